/*
 * The Socket.IO layer over either Engine.IO transport: CONNECT (the auth token, recovery from pid + offset),
 * the events that map to topics (subscribe, unsubscribe, publish, presence, auth) with their acks, messages
 * encoded once as EVENT packets whose last argument is the rtbroker id (the recovery offset), and the node-local
 * table that remembers a closed socket's topics for connection state recovery.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sio.h"

#define svc sio_svc
#define LIT(s) s, sizeof(s) - 1
#define TOPIC_CAP 1024

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        abort();
    return p;
}

void sio_send(sio_io_t *io, const char *pkt, size_t len)
{
    if (io->polling)
        sio_session_push(io->sess, pkt, len);
    else
        sio_ws_send(io->sub, pkt, len);
}

/* "4" + a Socket.IO packet built from pieces */
void sio_send_sio(sio_io_t *io, const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen)
{
    char *p = xmalloc(1 + alen + blen + clen);
    p[0] = '4';
    memcpy(p + 1, a, alen);
    if (blen)
        memcpy(p + 1 + alen, b, blen);
    if (clen)
        memcpy(p + 1 + alen + blen, c, clen);
    sio_send(io, p, 1 + alen + blen + clen);
    free(p);
}

void sio_ack(sio_io_t *io, int64_t id, const char *json, size_t len)
{
    if (id < 0)
        return;
    char head[32];
    int n = snprintf(head, sizeof(head), "3%lld[", (long long)id);
    sio_send_sio(io, head, (size_t)n, json, len, "]", 1);
}

/* {"error":"<code>","message":"<text>"} as an ack */
void sio_ack_error(sio_io_t *io, int64_t id, const char *code, const char *message)
{
    if (id < 0)
        return;
    size_t ml = strlen(message);
    char *esc = xmalloc(6 * ml + 2), *buf = xmalloc(6 * ml + 128);
    size_t el = sio_json_escape(esc, message, ml);
    int n = snprintf(buf, 6 * ml + 128, "{\"error\":\"%s\",\"message\":%.*s}", code, (int)el, esc);
    sio_ack(io, id, buf, (size_t)n);
    free(esc);
    free(buf);
}

void sio_connect_error(sio_io_t *io, const char *code, const char *message)
{
    size_t ml = strlen(message);
    char *esc = xmalloc(6 * ml + 2), *buf = xmalloc(6 * ml + 128);
    size_t el = sio_json_escape(esc, message, ml);
    int n = snprintf(buf, 6 * ml + 128, "4{\"message\":%.*s,\"data\":{\"error\":\"%s\"}}", (int)el, esc, code);
    sio_send_sio(io, buf, (size_t)n, NULL, 0, NULL, 0);
    free(esc);
    free(buf);
}

/* A JSON string argument decoded into out; its length or -1. */
static long str_arg(sio_slice_t v, char t, char *out, size_t cap)
{
    if (t != 's')
        return -1;
    int n = svc->json_unescape((rt_str_t){v.base, v.len}, out, cap);
    return n < 0 ? -1 : n;
}

static const rt_json_field_t *field(const rt_json_field_t *f, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++)
        if (f[i].key.len == kl && memcmp(f[i].key.base, key, kl) == 0)
            return &f[i];
    return NULL;
}

static int split_cursor(const char *id, size_t len, uint64_t *epoch, uint64_t *seq)
{
    char buf[SIO_CURSOR_MAX];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    memcpy(buf, id, len);
    buf[len] = '\0';
    unsigned long long e, s;
    if (sscanf(buf, "%llu:%llu", &e, &s) != 2)
        return -1;
    *epoch = e, *seq = s;
    return 0;
}

static void set_cursor(sio_state_t *st, rt_str_t c)
{
    if (c.len < sizeof(st->cursor)) {
        memcpy(st->cursor, c.base, c.len);
        st->cursor_len = c.len;
    }
}

/* Polling: the next GET resumes at the older of the session's cursor and `since` (same epoch), so that a
 * subscribe with since loses nothing; a few messages of other topics may come twice. */
static void merge_cursor(sio_state_t *st, rt_str_t since, rt_str_t now)
{
    uint64_t e1, s1, e2, s2;
    if (st->cursor_len == 0)
        set_cursor(st, since.len ? since : now);
    else if (since.len && split_cursor(since.base, since.len, &e1, &s1) == 0 &&
             split_cursor(st->cursor, st->cursor_len, &e2, &s2) == 0 && e1 == e2 && s1 < s2)
        set_cursor(st, since);
}

/* ---------- recovery: pid -> the topics of a socket that went away, kept recovery_window on this node ---------- */

typedef struct sio_saved {
    struct sio_saved *next;
    char pid[SIO_ID_LEN + 1];
    sio_topic_t *topics;
    size_t ntopics;
    uint64_t expires;
} sio_saved_t;

static sio_saved_t *saved;
static size_t nsaved;
static pthread_mutex_t saved_lock = PTHREAD_MUTEX_INITIALIZER;

static void saved_free(sio_saved_t *s)
{
    sio_state_t tmp = {.topics = s->topics, .ntopics = s->ntopics};
    sio_topics_clear(&tmp);
    free(s);
}

/* Drops expired entries (and the oldest past 4096); called with saved_lock held. */
static void saved_sweep(uint64_t now)
{
    size_t kept = 0;
    for (sio_saved_t **p = &saved; *p;) {
        if ((*p)->expires <= now || kept >= 4096) {
            sio_saved_t *dead = *p;
            *p = dead->next;
            saved_free(dead);
            nsaved--;
        } else {
            kept++;
            p = &(*p)->next;
        }
    }
}

static void saved_put(sio_state_t *st)
{
    if (sio_recovery_window == 0 || st->pid[0] == '\0')
        return;
    sio_saved_t *s = xmalloc(sizeof(*s));
    memcpy(s->pid, st->pid, sizeof(s->pid));
    s->topics = st->topics, s->ntopics = st->ntopics;
    st->topics = NULL, st->ntopics = 0;
    pthread_mutex_lock(&saved_lock);
    uint64_t now = sio_now();
    s->expires = now + sio_recovery_window;
    s->next = saved; /* newest first: the sweep drops the oldest past the cap */
    saved = s;
    nsaved++;
    saved_sweep(now);
    pthread_mutex_unlock(&saved_lock);
}

static sio_saved_t *saved_take(const char *pid, size_t len)
{
    sio_saved_t *found = NULL;
    pthread_mutex_lock(&saved_lock);
    saved_sweep(sio_now());
    for (sio_saved_t **p = &saved; *p; p = &(*p)->next)
        if (strlen((*p)->pid) == len && memcmp((*p)->pid, pid, len) == 0) {
            found = *p;
            *p = found->next;
            nsaved--;
            break;
        }
    pthread_mutex_unlock(&saved_lock);
    return found;
}

void sio_recovery_fini(void)
{
    pthread_mutex_lock(&saved_lock);
    while (saved) {
        sio_saved_t *s = saved;
        saved = s->next;
        saved_free(s);
    }
    nsaved = 0;
    pthread_mutex_unlock(&saved_lock);
}

void sio_state_free(sio_state_t *st, int keep_for_recovery)
{
    if (keep_for_recovery && st->connected)
        saved_put(st);
    sio_topics_clear(st);
    free(st->token);
    st->token = NULL;
    st->connected = 0;
}

/* Subscribes the state's topics on a fresh subscriber (a polling GET, or a WebSocket taking over a session) from
 * its cursor, with its token, and joins the presences asked for. RT_OK or the refusal. */
int sio_state_subscribe(rt_sub_t *sub, sio_state_t *st, int presence_flags)
{
    const char *why;
    if (st->token && svc->authenticate(sub, (rt_str_t){st->token, st->token_len}, &why) != RT_OK)
        return RT_EUNAUTHORIZED;
    if (st->ntopics == 0)
        return RT_OK;
    rt_str_t *t = xmalloc(st->ntopics * sizeof(*t));
    for (size_t i = 0; i < st->ntopics; i++)
        t[i] = (rt_str_t){st->topics[i].pattern, st->topics[i].len};
    rt_sub_opts_t o = {t, st->ntopics, {st->cursor, st->cursor_len}, 0};
    int err = svc->subscribe(sub, &o);
    for (size_t i = 0; err == RT_OK && i < st->ntopics; i++)
        if (st->topics[i].presence)
            svc->presence_join(sub, t[i], (rt_str_t){st->client, st->client_len}, presence_flags);
    free(t);
    return err;
}

/* ---------- CONNECT ---------- */

/* The CONNECT's answer once its topics are subscribed (k->want, taken): the socket's ids, then its offset. */
void sio_connect_done(sio_io_t *io, sio_connect_t *k)
{
    sio_state_t *st = io->st;
    sio_conn_t *c = svc->sub_data(io->sub);
    rt_str_t from = {k->from, k->from_len};
    st->topics = k->want.topics, st->ntopics = k->want.ntopics;
    k->want.topics = NULL, k->want.ntopics = 0;
    if (io->polling && st->ntopics) /* without a subscription the subscriber's cursor means nothing */
        merge_cursor(st, from, svc->sub_cursor(io->sub));
    int recovered = k->recovering && k->recoverable && !c->gap;
    sio_random_id(st->sid);
    if (recovered)
        memcpy(st->pid, k->pid, sizeof(st->pid));
    else
        sio_random_id(st->pid);
    st->connected = 1;
    char buf[96];
    int n = snprintf(buf, sizeof(buf), "0{\"sid\":\"%s\",\"pid\":\"%s\"}", st->sid, st->pid);
    sio_send_sio(io, buf, (size_t)n, NULL, 0, NULL, 0);
    if (k->refused)
        sio_send_sio(io, LIT("2[\"rt.recovery\",{\"error\":\"invalid_offset\",\"message\":\"the offset's token does not "
                             "match this session; nothing was recovered\"}]"), NULL, 0, NULL, 0);
    sio_token_update(st); /* the offset the client keeps now: the token with this pid */
    if (st->rtok)
        sio_offset_packet(io, io->polling ? (rt_str_t){st->cursor, st->cursor_len} : svc->sub_cursor(io->sub));
}

/* Why a connection the connect proxy refused (or that limits.connections_per_user holds back) cannot connect. */
static const char *refusal_message(int err)
{
    return err == RT_EUNAVAILABLE  ? "the application backend could not decide; retry later"
           : err == RT_ERATELIMIT  ? "too many connections; retry later"
           : err == RT_EFORBIDDEN  ? "the application backend refused this connection"
                                   : "the application backend refused this connection: log in first";
}

static void on_connect(sio_io_t *io, const sio_packet_t *pk)
{
    sio_state_t *st = io->st;
    sio_conn_t *c = svc->sub_data(io->sub);
    if (pk->nsp.len != 1) {
        char buf[300];
        int n = snprintf(buf, sizeof(buf), "4%.*s,{\"message\":\"Invalid namespace\"}", (int)pk->nsp.len, pk->nsp.base);
        sio_send_sio(io, buf, (size_t)n, NULL, 0, NULL, 0);
        return;
    }
    if (st->connecting) /* a second CONNECT while the first waits for the backend */
        return;
    if (st->connected) { /* a second CONNECT: the same socket */
        char buf[96];
        int n = snprintf(buf, sizeof(buf), "0{\"sid\":\"%s\",\"pid\":\"%s\"}", st->sid, st->pid);
        sio_send_sio(io, buf, (size_t)n, NULL, 0, NULL, 0);
        return;
    }
    /* the connect proxy refused this session: no token in the CONNECT gets around the backend's no */
    int pre = svc->sub_auth_state(io->sub);
    if (sio_proxy_connect && pre < 0) {
        sio_connect_error(io, svc->strerror(pre), refusal_message(pre));
        return;
    }
    rt_json_field_t f[16];
    int nf = pk->data.len ? svc->json_object((rt_str_t){pk->data.base, pk->data.len}, f, 16) : 0;
    if (nf < 0) {
        sio_connect_error(io, "invalid", "the auth payload must be a JSON object of at most 16 members");
        return;
    }
    const rt_json_field_t *tok = field(f, nf, "token"), *topics = field(f, nf, "topics"), *pid = field(f, nf, "pid"),
                          *offset = field(f, nf, "offset");
    const char *why = "unauthorized";
    if (tok && tok->type == 's') {
        char *t = xmalloc(tok->value.len);
        int tl = svc->json_unescape(tok->value, t, tok->value.len);
        if (tl <= 0 || svc->authenticate(io->sub, (rt_str_t){t, (size_t)tl}, &why) != RT_OK) {
            free(t);
            sio_connect_error(io, "unauthorized", why);
            return;
        }
        free(st->token);
        st->token = t, st->token_len = (size_t)tl;
    } else if (tok && tok->type != 'z') {
        sio_connect_error(io, "unauthorized", "auth.token must be a string");
        return;
    }
    int state = svc->sub_auth_state(io->sub);
    if (state != RT_OK) {
        sio_connect_error(io, state == 1 || state == RT_EUNAUTHORIZED ? "unauthorized" : svc->strerror(state),
                          state == 1 ? "send a token: io(url, {auth: {token}})"
                          : state == RT_EUNAUTHORIZED ? "the token is not valid" : refusal_message(state));
        return;
    }
    /* the topics to (re)subscribe: auth.topics, and those the socket emitted (its signed offset, or this node's
     * memory of it) */
    sio_connect_t k = {0};
    char since[SIO_CURSOR_MAX + SIO_TOKEN_MAX + 1];
    int pl = pid && pid->type == 's' ? svc->json_unescape(pid->value, k.pid, SIO_ID_LEN) : -1;
    int ol = offset && offset->type == 's' ? svc->json_unescape(offset->value, since, sizeof(since) - 1) : -1;
    int recovering = pl == SIO_ID_LEN && ol > 0, refused = offset && offset->type == 's' && ol < 0;
    sio_state_t signed_topics = {0};
    size_t idl = ol > 0 ? (size_t)ol : 0;
    int signed_ok = recovering ? sio_token_parse(k.pid, since, (size_t)ol, &idl, &signed_topics) : 0;
    if (signed_ok < 0 || refused || idl >= SIO_CURSOR_MAX) { /* forged, tampered or oversized: a fresh socket */
        sio_topics_clear(&signed_topics);
        recovering = 0, signed_ok = 0, refused = 1;
    }
    sio_saved_t *prev = recovering ? saved_take(k.pid, (size_t)pl) : NULL;
    if (prev) { /* this node's memory has the presence flags too */
        sio_topics_clear(&signed_topics);
        k.want.topics = prev->topics, k.want.ntopics = prev->ntopics;
        prev->topics = NULL, prev->ntopics = 0;
        saved_free(prev);
    } else {
        k.want = signed_topics;
    }
    int from_auth = 0;
    size_t recovered_n = k.want.ntopics, auth_at[64], nauth = 0;
    if (topics && topics->type == 'a') {
        sio_slice_t a[64];
        char ty[64];
        int n = sio_json_array(topics->value.base, topics->value.len, a, ty, 64, &why);
        for (int i = 0; i < n; i++) {
            char t[TOPIC_CAP];
            long tl = str_arg(a[i], ty[i], t, sizeof(t));
            if (tl <= 0) {
                n = -1;
                break;
            }
            sio_topic_add(&k.want, t, (size_t)tl, 0, 0);
            auth_at[nauth++] = (size_t)sio_topic_find(&k.want, t, (size_t)tl);
            from_auth = 1;
        }
        if (n < 0) {
            sio_topics_clear(&k.want);
            sio_connect_error(io, "invalid_topic", "auth.topics must be an array of at most 64 topic strings");
            return;
        }
    }
    if (recovering)
        memcpy(k.from, since, idl), k.from_len = idl;
    k.recovering = recovering, k.refused = refused;
    k.recoverable = prev != NULL || signed_ok > 0 || from_auth;
    c->gap = 0;
    if (k.want.ntopics > 63 && sio_proxy_sub) { /* as a subscribe request's: the calls one CONNECT makes are bounded */
        sio_topics_clear(&k.want);
        sio_connect_error(io, "too_many_topics", "at most 63 topics are asked about per CONNECT (proxy.subscribe)");
        return;
    }
    if (k.want.ntopics && sio_proxy_sub) { /* proxy.subscribe: each topic waits for the backend's yes */
        sio_connect_ask(io, &k, recovered_n, auth_at, nauth);
        return;
    }
    rt_str_t from = {k.from, k.from_len};
    int err = RT_OK;
    st->connected = 1; /* the replay goes out before the CONNECT answer; the client holds it until then */
    if (k.want.ntopics) {
        err = sio_recover_subscribe(io->sub, &k.want, from);
        if (err == RT_EFORBIDDEN && recovering) /* resubscribe what the new token still allows */
            err = sio_recover_prune(io, &k.want) > 0 ? sio_recover_subscribe(io->sub, &k.want, from) : RT_OK;
    }
    if (err != RT_OK) {
        st->connected = 0;
        sio_topics_clear(&k.want);
        sio_connect_error(io, svc->strerror(err),
                          err == RT_EFORBIDDEN ? "the token does not allow subscribing to these topics" : "cannot subscribe");
        return;
    }
    sio_connect_done(io, &k);
}

/* ---------- events ---------- */

typedef struct pub_arg {
    int64_t ack_id;
} pub_arg_t;

static void publish_done(rt_sub_t *sub, int err, rt_str_t id, void *arg)
{
    pub_arg_t *a = arg;
    sio_conn_t *c = svc->sub_data(sub);
    char buf[160];
    int n = err == RT_OK ? snprintf(buf, sizeof(buf), "{\"id\":\"%.*s\"}", (int)(id.len > 64 ? 64 : id.len), id.base)
                         : snprintf(buf, sizeof(buf), "{\"error\":\"%s\",\"message\":\"the publish failed\"}", svc->strerror(err));
    if (c->kind == CONN_POST) {
        pthread_mutex_lock(&sio_lock);
        sio_session_t *s = sio_session_find(c->sid, strlen(c->sid));
        if (s) {
            sio_io_t io = {sub, &s->st, s, 1};
            sio_ack(&io, a->ack_id, buf, (size_t)n);
        }
        pthread_mutex_unlock(&sio_lock);
        sio_post_settle(sub, c);
    } else {
        sio_io_t io = {sub, &c->st, NULL, 0};
        sio_ack(&io, a->ack_id, buf, (size_t)n);
    }
    free(a);
}

static void ev_publish(sio_io_t *io, const sio_packet_t *pk)
{
    char topic[TOPIC_CAP], event[128], key[128];
    long tl = pk->nargs > 1 ? str_arg(pk->args[1], pk->arg_type[1], topic, sizeof(topic)) : -1;
    if (tl <= 0 || pk->nargs < 3) {
        sio_ack_error(io, pk->ack_id, "invalid", "publish takes (topic, data[, {event, ephemeral, idempotencyKey}])");
        return;
    }
    rt_pub_t pub = {.topic = {topic, (size_t)tl}};
    char *text = NULL;
    if (pk->arg_type[2] == 's') {
        text = xmalloc(pk->args[2].len);
        long dl = str_arg(pk->args[2], 's', text, pk->args[2].len);
        pub.data = (rt_str_t){text, dl < 0 ? 0 : (size_t)dl};
        pub.content_type = (rt_str_t){LIT("text/plain; charset=utf-8")};
    } else {
        pub.data = (rt_str_t){pk->args[2].base, pk->args[2].len};
        pub.content_type = (rt_str_t){LIT("application/json")};
    }
    if (pk->nargs > 3 && pk->arg_type[3] == 'o') {
        rt_json_field_t f[8];
        int nf = svc->json_object((rt_str_t){pk->args[3].base, pk->args[3].len}, f, 8);
        const rt_json_field_t *ev = field(f, nf, "event"), *eph = field(f, nf, "ephemeral"), *k = field(f, nf, "idempotencyKey");
        long n;
        if (ev && (n = str_arg((sio_slice_t){ev->value.base, ev->value.len}, ev->type, event, sizeof(event))) > 0)
            pub.event = (rt_str_t){event, (size_t)n};
        if (k && (n = str_arg((sio_slice_t){k->value.base, k->value.len}, k->type, key, sizeof(key))) > 0)
            pub.idempotency_key = (rt_str_t){key, (size_t)n};
        pub.ephemeral = eph && eph->type == 't';
    }
    sio_conn_t *c = svc->sub_data(io->sub);
    pub_arg_t *a = xmalloc(sizeof(*a));
    a->ack_id = pk->ack_id;
    const char *why = "refused";
    c->pending++;
    int err = svc->publish(io->sub, &pub, &why, publish_done, a);
    if (err != RT_OK) {
        c->pending--;
        free(a);
        sio_ack_error(io, pk->ack_id, svc->strerror(err), why);
    }
    free(text);
}

/* subscribe(topic | {topic, since, presence}) */
static void ev_subscribe(sio_io_t *io, const sio_packet_t *pk)
{
    char topic[TOPIC_CAP], since[SIO_CURSOR_MAX];
    long tl = -1, sl = 0;
    int presence = 0;
    if (pk->nargs > 1 && pk->arg_type[1] == 's') {
        tl = str_arg(pk->args[1], 's', topic, sizeof(topic));
    } else if (pk->nargs > 1 && pk->arg_type[1] == 'o') {
        rt_json_field_t f[8];
        int nf = svc->json_object((rt_str_t){pk->args[1].base, pk->args[1].len}, f, 8);
        const rt_json_field_t *t = field(f, nf, "topic"), *s = field(f, nf, "since"), *p = field(f, nf, "presence");
        if (t)
            tl = str_arg((sio_slice_t){t->value.base, t->value.len}, t->type, topic, sizeof(topic));
        if (s && s->type != 'z' && (sl = str_arg((sio_slice_t){s->value.base, s->value.len}, s->type, since, sizeof(since))) < 0) {
            sio_ack_error(io, pk->ack_id, "invalid_id", "since must be an id string");
            return;
        }
        presence = p && p->type == 't';
    }
    if (tl <= 0) {
        sio_ack_error(io, pk->ack_id, "invalid_topic", "subscribe takes a topic or {topic, since, presence}");
        return;
    }
    sio_state_t *st = io->st;
    rt_str_t t = {topic, (size_t)tl}, from = {since, (size_t)sl};
    if (sio_topic_find(st, topic, (size_t)tl) < 0 && io->polling &&
        st->ntopics + 1 > (size_t)svc->cfg_int("limits", "max_topics")) {
        sio_ack_error(io, pk->ack_id, "too_many_topics", "over limits.max_topics");
        return;
    }
    if (sio_recovery_window && sio_topic_find(st, topic, (size_t)tl) < 0 && sio_token_need(st, (size_t)tl) > SIO_TOKEN_MAX) {
        sio_ack_error(io, pk->ack_id, "too_many_topics", "the topics would not fit the recovery offset (4 KiB)");
        return;
    }
    if (sio_proxy_sub && (io->polling || sio_topic_find(st, topic, (size_t)tl) < 0)) /* the backend decides first */
        sio_subscribe_ask(io, pk->ack_id, t, from, presence);
    else
        sio_subscribe_now(io, pk->ack_id, t, from, presence);
}

void sio_subscribe_now(sio_io_t *io, int64_t ack_id, rt_str_t t, rt_str_t from, int presence)
{
    sio_state_t *st = io->st;
    const char *topic = t.base;
    size_t tl = t.len;
    rt_sub_opts_t o = {&t, 1, from, 0};
    sio_conn_t *c = svc->sub_data(io->sub);
    c->gap = 0;
    int err = sio_topic_find(st, topic, tl) >= 0 && !io->polling ? RT_OK : svc->subscribe(io->sub, &o);
    if (err == RT_OK && presence) {
        err = svc->presence_join(io->sub, t, (rt_str_t){st->client, st->client_len}, io->polling ? RT_PRESENCE_LINGER : 0);
        rt_str_t client = svc->sub_client(io->sub);
        if (err == RT_OK && io->polling && client.len < sizeof(st->client)) {
            memcpy(st->client, client.base, client.len);
            st->client_len = client.len;
        }
    }
    if (err != RT_OK) {
        sio_ack_error(io, ack_id, svc->strerror(err), err == RT_EFORBIDDEN ? "the token does not allow this topic" : "refused");
        return;
    }
    sio_topic_add(st, topic, tl, presence, 1);
    rt_str_t cur = svc->sub_cursor(io->sub);
    if (io->polling)
        merge_cursor(st, from, cur);
    char buf[TOPIC_CAP * 6 + 160], esc[TOPIC_CAP * 6 + 2];
    size_t el = sio_json_escape(esc, topic, tl);
    int n = snprintf(buf, sizeof(buf), "{\"ok\":true,\"topic\":%.*s,\"cursor\":\"%.*s\"%s}", (int)el, esc,
                     (int)(cur.len > 64 ? 64 : cur.len), cur.base, c->gap ? ",\"gap\":true" : "");
    sio_ack(io, ack_id, buf, (size_t)n);
    sio_token_update(st);
    sio_offset_packet(io, io->polling ? (rt_str_t){st->cursor, st->cursor_len} : cur);
}

static void ev_unsubscribe(sio_io_t *io, const sio_packet_t *pk)
{
    char topic[TOPIC_CAP];
    long tl = pk->nargs > 1 ? str_arg(pk->args[1], pk->arg_type[1], topic, sizeof(topic)) : -1;
    int i = tl > 0 ? sio_topic_find(io->st, topic, (size_t)tl) : -1;
    if (i < 0) {
        sio_ack_error(io, pk->ack_id, "invalid", "not subscribed to this topic");
        return;
    }
    if (!io->polling)
        svc->unsubscribe(io->sub, (rt_str_t){topic, (size_t)tl});
    sio_state_t *st = io->st;
    free(st->topics[i].pattern);
    st->topics[i] = st->topics[--st->ntopics];
    sio_ack(io, pk->ack_id, LIT("{\"ok\":true}"));
    sio_token_update(st);
    sio_offset_packet(io, io->polling ? (rt_str_t){st->cursor, st->cursor_len} : svc->sub_cursor(io->sub));
}

static void ev_presence(sio_io_t *io, const sio_packet_t *pk)
{
    char topic[TOPIC_CAP];
    long tl = pk->nargs > 1 ? str_arg(pk->args[1], pk->arg_type[1], topic, sizeof(topic)) : -1;
    rt_str_t json;
    int err = tl > 0 ? svc->presence_snapshot(io->sub, (rt_str_t){topic, (size_t)tl}, &json) : RT_ETOPIC;
    if (err != RT_OK)
        sio_ack_error(io, pk->ack_id, svc->strerror(err), "no presence for this topic");
    else
        sio_ack(io, pk->ack_id, json.base, json.len);
}

static void ev_auth(sio_io_t *io, const sio_packet_t *pk)
{
    sio_state_t *st = io->st;
    const char *why = "unauthorized";
    char *t = pk->nargs > 1 && pk->arg_type[1] == 's' ? xmalloc(pk->args[1].len) : NULL;
    long tl = t ? str_arg(pk->args[1], 's', t, pk->args[1].len) : -1;
    if (tl <= 0 || svc->authenticate(io->sub, (rt_str_t){t, (size_t)tl}, &why) != RT_OK) {
        free(t);
        sio_ack_error(io, pk->ack_id, "unauthorized", why);
        return;
    }
    free(st->token);
    st->token = t, st->token_len = (size_t)tl;
    sio_ack(io, pk->ack_id, LIT("{\"ok\":true}"));
}

int sio_handle(sio_io_t *io, const char *p, size_t n)
{
    sio_packet_t pk;
    const char *why;
    if (sio_parse(p, n, &pk, &why) != 0) {
        svc->log(3, "socketio", "closing: %s", why);
        return -1;
    }
    if (pk.type == SIO_CONNECT) {
        on_connect(io, &pk);
        return 0;
    }
    if (pk.nsp.len != 1 || !io->st->connected || io->st->connecting)
        return 0; /* not connected to that namespace (or not yet): ignored, as Socket.IO servers do */
    if (pk.type == SIO_DISCONNECT) {
        sio_state_t *st = io->st;
        for (size_t i = 0; !io->polling && i < st->ntopics; i++)
            svc->unsubscribe(io->sub, (rt_str_t){st->topics[i].pattern, st->topics[i].len});
        sio_topics_clear(st);
        st->connected = 0;
        return 0;
    }
    if (pk.type != SIO_EVENT)
        return pk.type == SIO_ACK ? 0 : -1;
    char name[32];
    long nl = str_arg(pk.args[0], 's', name, sizeof(name));
    if (nl == 9 && memcmp(name, "subscribe", 9) == 0)
        ev_subscribe(io, &pk);
    else if (nl == 11 && memcmp(name, "unsubscribe", 11) == 0)
        ev_unsubscribe(io, &pk);
    else if (nl == 7 && memcmp(name, "publish", 7) == 0)
        ev_publish(io, &pk);
    else if (nl == 8 && memcmp(name, "presence", 8) == 0)
        ev_presence(io, &pk);
    else if (nl == 4 && memcmp(name, "auth", 4) == 0)
        ev_auth(io, &pk);
    else
        sio_ack_error(io, pk.ack_id, "unknown_event", "events: subscribe, unsubscribe, publish, presence, auth");
    return 0;
}

/* ---------- messages ---------- */

/* 42["<event>|message",<data>,{"id","topic"[,"encoding"]}(,"<id>")] once per message; slot 1 adds the frame. */
rt_str_t sio_encode_event(rt_msg_t *msg, int slot)
{
    rt_msg_view_t v;
    svc->msg_view(msg, &v);
    int presence = (v.flags & (RT_MSG_JOIN | RT_MSG_LEAVE)) != 0;
    rt_str_t ev = presence ? (v.flags & RT_MSG_JOIN ? (rt_str_t){LIT("rt.join")} : (rt_str_t){LIT("rt.leave")})
                           : v.event.len ? v.event : (rt_str_t){LIT("message")};
    size_t cap = 10 + 16 + 6 * ev.len + 6 * v.data.len + 4 * v.data.len / 3 + 6 * v.topic.len + 2 * v.id.len + 96;
    char *out = xmalloc(cap), *p = out + 10; /* room for a frame header */
    memcpy(p, "42[", 3), p += 3;
    p += sio_json_escape(p, ev.base, ev.len);
    *p++ = ',';
    int b64 = 0;
    if (presence || (v.flags & RT_MSG_JSON)) {
        memcpy(p, v.data.base, v.data.len), p += v.data.len;
    } else if (v.flags & RT_MSG_UTF8) {
        p += sio_json_escape(p, v.data.base, v.data.len);
    } else {
        *p++ = '"';
        p += EVP_EncodeBlock((unsigned char *)p, (const unsigned char *)v.data.base, (int)v.data.len);
        *p++ = '"';
        b64 = 1;
    }
    memcpy(p, ",{", 2), p += 2;
    if (v.id.len)
        p += sprintf(p, "\"id\":\"%.*s\",", (int)v.id.len, v.id.base);
    memcpy(p, "\"topic\":", 8), p += 8;
    p += sio_json_escape(p, v.topic.base, v.topic.len);
    if (b64)
        memcpy(p, ",\"encoding\":\"base64\"", 20), p += 20;
    if (!v.id.len)
        memcpy(p, ",\"ephemeral\":true", 17), p += 17;
    *p++ = '}';
    if (v.id.len) /* the recovery offset, read by socket.io-client as the last string argument */
        p += sprintf(p, ",\"%.*s\"", (int)v.id.len, v.id.base);
    *p++ = ']';
    size_t len = (size_t)(p - (out + 10));
    if (slot == 0) {
        memmove(out, out + 10, len);
        return (rt_str_t){out, len};
    }
    unsigned char hdr[10];
    size_t h = ws_build_header(hdr, WS_TEXT, 1, 0, len);
    memcpy(out + 10 - h, hdr, h);
    memmove(out, out + 10 - h, h + len);
    return (rt_str_t){out, h + len};
}

/* The token expires soon (WebSocket): the client may emit('auth', newToken) before it does. */
void sio_expiring(sio_io_t *io, int64_t seconds_left)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "2[\"rt.expiring\",{\"in_s\":%lld}]", (long long)seconds_left);
    sio_send_sio(io, buf, (size_t)n, NULL, 0, NULL, 0);
}

/* A token refresh dropped a subscription: forget it, and tell the client. */
void sio_dropped(sio_io_t *io, rt_str_t pattern)
{
    int i = sio_topic_find(io->st, pattern.base, pattern.len);
    if (i >= 0) {
        free(io->st->topics[i].pattern);
        io->st->topics[i] = io->st->topics[--io->st->ntopics];
        sio_token_update(io->st);
    }
    char *esc = xmalloc(6 * pattern.len + 2);
    size_t el = sio_json_escape(esc, pattern.base, pattern.len);
    sio_send_sio(io, "2[\"rt.dropped\",{\"topic\":", 24, esc, el, "}]", 2);
    free(esc);
}

void sio_gap_packet(sio_io_t *io, rt_str_t from)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "2[\"rt.gap\",{\"from\":\"%.*s\"}]", (int)(from.len > 64 ? 64 : from.len), from.base);
    sio_send_sio(io, buf, (size_t)n, NULL, 0, NULL, 0);
}
