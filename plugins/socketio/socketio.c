/*
 * Socket.IO transport: Engine.IO v4 at /socket.io/ (handshake, HTTP long-polling, WebSocket, the upgrade from one
 * to the other, heartbeats) carrying Socket.IO v5 packets (sio_events.c). A polling session's state lives in a
 * table on this node (polling needs sticky sessions); each GET opens a fresh subscriber that resumes from the
 * session's cursor, each POST one that authorizes and publishes. Any worker may serve any request of a session,
 * so every session field is touched under sio_lock. Written only against include/rtbroker/plugin.h.
 */
#define _GNU_SOURCE /* clock_gettime, recursive mutexes, getrandom under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "sio.h"

const rt_services_t *sio_svc;
static const char *sio_paths[] = {"/socket.io", NULL, NULL};
#define svc sio_svc
#define LIT(s) s, sizeof(s) - 1

pthread_mutex_t sio_lock;
uint64_t sio_ping_interval, sio_ping_timeout, sio_recovery_window;
size_t sio_max_payload;
int sio_echo;
static size_t max_sessions, nsessions, max_queue;
static uint64_t last_sweep;

#define NBUCKETS 4096
static sio_session_t *buckets[NBUCKETS];

uint64_t sio_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void sio_random_id(char out[SIO_ID_LEN + 1])
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[SIO_ID_LEN];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        abort();
    for (int i = 0; i < SIO_ID_LEN; i++)
        out[i] = abc[r[i] & 63];
    out[SIO_ID_LEN] = '\0';
}

static int sio_init(const rt_services_t *services)
{
    svc = services;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE); /* a publish may answer (and push an ack) at once */
    pthread_mutex_init(&sio_lock, &a);
    pthread_mutexattr_destroy(&a);
    sio_ping_interval = (uint64_t)svc->cfg_int("socketio", "ping_interval");
    sio_ping_timeout = (uint64_t)svc->cfg_int("socketio", "ping_timeout");
    sio_recovery_window = (uint64_t)svc->cfg_int("socketio", "recovery_window");
    sio_max_payload = (size_t)svc->cfg_int("socketio", "max_payload");
    max_sessions = (size_t)svc->cfg_int("socketio", "max_sessions");
    sio_echo = (int)svc->cfg_int("socketio", "echo");
    max_queue = (size_t)svc->cfg_int("limits", "max_queue_bytes");
    sio_proxy_connect = svc->cfg_string("proxy", "connect.url").len > 0;
    sio_proxy_sub = svc->cfg_string("proxy", "subscribe.url").len > 0;
    if (sio_echo) {
        sio_paths[1] = "/engine.io"; /* read per request; the table's other paths are unchanged */
        svc->log(1, "socketio", "socketio.echo is on: /engine.io/ echoes Engine.IO messages (for the protocol test suite)");
    }
    size_t entity = (size_t)svc->cfg_int("limits", "max_message_bytes") * 2 + (1 << 20);
    if (sio_max_payload > entity) { /* the server refuses bodies past this anyway */
        svc->log(1, "socketio", "socketio.max_payload lowered to %zu (the request body limit)", entity);
        sio_max_payload = entity;
    }
    return 0;
}

static void sio_fini(void)
{
    for (size_t b = 0; b < NBUCKETS; b++)
        while (buckets[b])
            sio_session_remove(buckets[b]);
    sio_recovery_fini();
}

static int sio_claims(rt_request_t *req)
{
    (void)req;
    return 0; /* only its explicit path */
}

/* ---------- sessions ---------- */

static size_t bucket_of(const char *sid, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)sid[i]) * 16777619u;
    return h % NBUCKETS;
}

sio_session_t *sio_session_find(const char *sid, size_t len)
{
    if (len != SIO_ID_LEN)
        return NULL;
    for (sio_session_t *s = buckets[bucket_of(sid, len)]; s; s = s->next)
        if (memcmp(s->sid, sid, len) == 0)
            return s;
    return NULL;
}

void sio_session_remove(sio_session_t *s)
{
    for (sio_session_t **p = &buckets[bucket_of(s->sid, SIO_ID_LEN)]; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    nsessions--;
    sio_state_free(&s->st, !s->upgraded);
    free(s->out);
    free(s);
}

void sio_session_push(sio_session_t *s, const char *pkt, size_t len)
{
    if (s->dead)
        return;
    if (s->out_len + len > max_queue) { /* a client that POSTs but never polls: a slow consumer */
        s->dead = 1;
        return;
    }
    if (s->out_len + len + 1 > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 256;
        while (cap < s->out_len + len + 1)
            cap *= 2;
        s->out = realloc(s->out, cap);
        if (s->out == NULL)
            abort();
        s->out_cap = cap;
    }
    if (s->out_len)
        s->out[s->out_len++] = '\x1e';
    memcpy(s->out + s->out_len, pkt, len);
    s->out_len += len;
}

/* The session ends: its socket's topics are kept for recovery now (the client may reconnect at once), the
 * session itself goes at the next sweep or poll. */
static void session_kill(sio_session_t *s)
{
    s->dead = 1;
    sio_state_free(&s->st, 1);
}

/* Heartbeat of a polling session: queue a ping when due; 1 when the client missed its pong (the session is dead). */
static int session_tick(sio_session_t *s, uint64_t now)
{
    if (s->dead)
        return 1;
    if (s->upgraded)
        return 0;
    if (!s->pong_pending && now >= s->next_ping) { /* as if a timer had fired at next_ping */
        sio_session_push(s, "2", 1);
        s->pong_pending = 1;
        s->pong_deadline = s->next_ping + sio_ping_timeout;
        s->next_ping += sio_ping_interval;
        if (s->next_ping <= now)
            s->next_ping = now + sio_ping_interval;
    }
    if (s->pong_pending && now > s->pong_deadline && !s->get_held)
        s->dead = 1;
    return s->dead;
}

/* Removes dead polling sessions (at most twice a second; sio_lock held). Upgraded ones belong to their socket. */
static void sweep(uint64_t now)
{
    if (now - last_sweep < 500)
        return;
    last_sweep = now;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (sio_session_t *s = buckets[b], *next; s; s = next) {
            next = s->next;
            if (!s->upgraded && !s->get_held && session_tick(s, now))
                sio_session_remove(s);
        }
}

static void eio_error(rt_request_t *req, int status, int code, const char *message)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "{\"code\":%d,\"message\":\"%s\"}", code, message);
    svc->respond(req, status, "application/json", buf, (size_t)n);
}

int sio_handshake_packet(char *buf, size_t cap, const char *sid, int upgrades)
{
    return snprintf(buf, cap, "0{\"sid\":\"%s\",\"upgrades\":[%s],\"pingInterval\":%llu,\"pingTimeout\":%llu,\"maxPayload\":%zu}",
                    sid, upgrades ? "\"websocket\"" : "", (unsigned long long)sio_ping_interval,
                    (unsigned long long)sio_ping_timeout, sio_max_payload);
}


/* ---------- polling GET: held until there is something to say ---------- */

static void get_answer(rt_sub_t *sub)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->answered)
        return;
    c->answered = 1;
    rt_str_t parts[3];
    size_t np = 0;
    pthread_mutex_lock(&sio_lock);
    sio_session_t *s = sio_session_find(c->sid, SIO_ID_LEN);
    char *out = NULL;
    size_t out_len = 0;
    if (s == NULL || s->dead) {
        parts[np++] = s && s->client_closed ? (rt_str_t){"6", 1} : (rt_str_t){"1", 1}; /* noop, or close */
        if (s)
            sio_session_remove(s);
    } else {
        s->get_held = 0;
        s->last_seen = sio_now();
        if (c->len && s->st.connected) { /* the session resumes after the last message handed over */
            rt_str_t cur = c->full ? (rt_str_t){c->last_id, c->last_id_len} : svc->sub_cursor(sub);
            if (cur.len && cur.len < sizeof(s->st.cursor)) {
                memcpy(s->st.cursor, cur.base, cur.len);
                s->st.cursor_len = cur.len;
            }
        }
        out = s->out, out_len = s->out_len;
        s->out = NULL, s->out_len = s->out_cap = 0;
        if (out_len)
            parts[np++] = (rt_str_t){out, out_len};
        if (out_len && c->len)
            parts[np++] = (rt_str_t){"\x1e", 1};
        if (c->len)
            parts[np++] = (rt_str_t){c->buf, c->len};
        if (np == 0)
            parts[np++] = (rt_str_t){"6", 1}; /* noop: the session upgraded, or nothing to say */
    }
    pthread_mutex_unlock(&sio_lock);
    svc->count_delivered(&rt_transport_v1, 0, c->len);
    svc->sub_respond(sub, 200, "text/plain; charset=UTF-8", parts, np);
    free(out);
}

static void get_tick(rt_sub_t *sub)
{
    sio_conn_t *c = svc->sub_data(sub);
    pthread_mutex_lock(&sio_lock);
    sio_session_t *s = sio_session_find(c->sid, SIO_ID_LEN);
    int now = s == NULL || session_tick(s, sio_now()) || s->out_len || s->probing || s->upgraded;
    pthread_mutex_unlock(&sio_lock);
    if (now)
        get_answer(sub);
    else
        svc->sub_timer(sub, 0, 20, get_tick); /* another worker's POST may have queued something */
}

static void poll_get(rt_request_t *req, sio_session_t *s)
{
    if (s->get_held) { /* overlapping polls: the protocol closes the session */
        session_kill(s);
        eio_error(req, 400, 3, "Bad request");
        return;
    }
    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, sizeof(sio_conn_t));
    sio_conn_t *c = svc->sub_data(sub);
    c->kind = CONN_GET;
    memcpy(c->sid, s->sid, sizeof(c->sid));
    s->get_held = 1;
    s->last_seen = sio_now();
    int err = s->st.connected ? sio_state_subscribe(sub, &s->st, RT_PRESENCE_LINGER) : RT_OK;
    if (err != RT_OK) { /* the token expired or the rights changed: the server disconnects the socket */
        sio_state_free(&s->st, 0);
        sio_session_push(s, "41", 2);
    }
    if (s->out_len || s->probing || c->len)
        svc->sub_timer(sub, 0, 0, get_answer);
    else
        svc->sub_timer(sub, 0, 20, get_tick);
}

/* ---------- polling POST: Engine.IO packets separated by 0x1e ---------- */

static int post_packet(sio_io_t *io, const char *p, size_t n)
{
    sio_session_t *s = io->sess;
    if (n == 0)
        return -1;
    switch (p[0]) {
    case '1': /* close */
        s->client_closed = 1;
        session_kill(s);
        return 0;
    case '2': /* a ping from the client: not in v4, answered anyway */
        sio_session_push(s, "3", 1);
        return 0;
    case '3':
        s->pong_pending = 0;
        return 0;
    case '4':
        if (s->echo) {
            sio_session_push(s, p, n);
            return 0;
        }
        return sio_handle(io, p + 1, n - 1);
    case 'b': /* binary (base64): only the echo mode takes it */
        if (!s->echo)
            return -1;
        sio_session_push(s, p, n);
        return 0;
    case '6':
        return 0;
    default: /* binary ('b...') and unknown types */
        return -1;
    }
}

static void poll_post(rt_request_t *req, sio_session_t *s)
{
    rt_str_t body = svc->req_body(req);
    if (body.len > sio_max_payload) {
        session_kill(s);
        eio_error(req, 413, 3, "Bad request");
        return;
    }
    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, sizeof(sio_conn_t));
    sio_conn_t *c = svc->sub_data(sub);
    c->kind = CONN_POST;
    memcpy(c->sid, s->sid, sizeof(c->sid));
    s->last_seen = sio_now();
    const char *why;
    if (s->st.token)
        svc->authenticate(sub, (rt_str_t){s->st.token, s->st.token_len}, &why);
    sio_io_t io = {sub, &s->st, s, 1};
    int bad = 0;
    for (size_t i = 0; i < body.len && !bad;) {
        size_t j = i;
        while (j < body.len && body.base[j] != '\x1e')
            j++;
        bad = post_packet(&io, body.base + i, j - i) != 0;
        i = j + 1;
    }
    if (bad || body.len == 0) {
        session_kill(s);
        c->parsed = 1;
        static const rt_str_t err = {"{\"code\":3,\"message\":\"Bad request\"}", 34};
        svc->sub_respond(sub, 400, "application/json", &err, 1);
        return;
    }
    c->parsed = 1;
    if (c->pending == 0)
        svc->sub_respond(sub, 200, "text/html", &(rt_str_t){"ok", 2}, 1);
}

/* ---------- dispatch ---------- */

static int query_is(rt_request_t *req, const char *name, const char *value, rt_str_t *out)
{
    rt_str_t v = {NULL, 0};
    int found = svc->req_query(req, name, 0, &v);
    if (out)
        *out = v;
    return found && v.len == strlen(value) && memcmp(v.base, value, v.len) == 0;
}

static void new_polling_session(rt_request_t *req, int echo)
{
    if (nsessions >= max_sessions) {
        svc->respond_error(req, RT_EUNAVAILABLE, "too many Socket.IO polling sessions on this node (socketio.max_sessions)");
        return;
    }
    sio_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        abort();
    sio_random_id(s->sid);
    s->echo = echo;
    uint64_t now = sio_now();
    s->next_ping = now + sio_ping_interval;
    s->last_seen = now;
    size_t b = bucket_of(s->sid, SIO_ID_LEN);
    s->next = buckets[b];
    buckets[b] = s;
    nsessions++;
    char buf[256];
    int n = sio_handshake_packet(buf, sizeof(buf), s->sid, 1);
    svc->respond(req, 200, "text/plain; charset=UTF-8", buf, (size_t)n);
}

static void sio_start(rt_request_t *req)
{
    rt_str_t method = svc->req_method(req), transport, sid;
    int get = method.len == 3 && memcmp(method.base, "GET", 3) == 0, post = method.len == 4 && memcmp(method.base, "POST", 4) == 0;
    if (!query_is(req, "EIO", "4", NULL)) {
        eio_error(req, 400, 5, "Unsupported protocol version");
        return;
    }
    int polling = query_is(req, "transport", "polling", &transport), ws = query_is(req, "transport", "websocket", NULL);
    if (!polling && !ws) {
        eio_error(req, 400, 0, "Transport unknown");
        return;
    }
    int has_sid = svc->req_query(req, "sid", 0, &sid);
    rt_str_t path = svc->req_path(req);
    int echo = sio_echo && path.len >= 10 && memcmp(path.base, "/engine.io", 10) == 0;
    pthread_mutex_lock(&sio_lock);
    uint64_t now = sio_now();
    sweep(now);
    if (!has_sid) {
        if (!get)
            eio_error(req, 400, 2, "Bad handshake method");
        else if (ws)
            sio_ws_start(req, NULL, echo, 0);
        else
            new_polling_session(req, echo);
        pthread_mutex_unlock(&sio_lock);
        return;
    }
    sio_session_t *s = sio_session_find(sid.base, sid.len);
    if (s && !s->get_held && session_tick(s, now)) { /* missed its pong: gone */
        sio_session_remove(s);
        s = NULL;
    }
    if (s && s->dead && s->client_closed && get && polling && !s->get_held) {
        svc->respond(req, 200, "text/plain; charset=UTF-8", "6", 1); /* the poll racing the client's close */
        sio_session_remove(s);
    } else if (s == NULL || s->dead) {
        eio_error(req, 400, 1, "Session ID unknown");
    } else if (ws && get && (s->upgraded || s->probing)) {
        sio_ws_start(req, s, s->echo, 1); /* a second upgrade */
    } else if (s->upgraded || (ws && !get)) {
        eio_error(req, 400, 3, "Bad request"); /* a poll on an upgraded session */
    } else if (ws) {
        sio_ws_start(req, s, s->echo, 0);
    } else if (get) {
        poll_get(req, s);
    } else if (post) {
        poll_post(req, s);
    } else {
        eio_error(req, 400, 2, "Bad handshake method");
    }
    pthread_mutex_unlock(&sio_lock);
}

static void sio_deliver(rt_sub_t *sub, rt_msg_t *msg)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->kind == CONN_WS) {
        if (c->close_sent || !c->st.connected)
            return;
        rt_msg_view_t v;
        if (c->st.rtok && (svc->msg_view(msg, &v), v.id.len)) { /* its offset ends with its own recovery token */
            rt_str_t pkt = svc->msg_encoded(msg, &rt_transport_v1, 0, sio_encode_event); /* ...,"<id>"] */
            unsigned char hdr[10];
            size_t h = ws_build_header(hdr, WS_TEXT, 1, 0, pkt.len - 2 + c->st.rtok_len);
            if (svc->write_copy(sub, (const char *)hdr, h) == RT_OK &&
                svc->write_ref(sub, (rt_str_t){pkt.base, pkt.len - 2}, msg) == RT_OK &&
                svc->write_copy(sub, c->st.rtok, c->st.rtok_len) == RT_OK)
                svc->count_delivered(&rt_transport_v1, 1, h + pkt.len - 2 + c->st.rtok_len);
            return;
        }
        rt_str_t frame = svc->msg_encoded(msg, &rt_transport_v1, 1, sio_encode_event);
        if (svc->write_ref(sub, frame, msg) == RT_OK)
            svc->count_delivered(&rt_transport_v1, 1, frame.len);
        return;
    }
    if (c->kind != CONN_GET || c->answered || c->full)
        return; /* a POST only authorizes; its replay is the next GET's */
    rt_str_t pkt = svc->msg_encoded(msg, &rt_transport_v1, 0, sio_encode_event);
    if (c->len && c->len + pkt.len + 1 > sio_max_payload) {
        c->full = 1; /* the rest comes with the next poll, from the last id kept */
        return;
    }
    if (c->len + pkt.len + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        while (cap < c->len + pkt.len + 1)
            cap *= 2;
        c->buf = realloc(c->buf, cap);
        if (c->buf == NULL)
            abort();
        c->cap = cap;
    }
    if (c->len)
        c->buf[c->len++] = '\x1e';
    memcpy(c->buf + c->len, pkt.base, pkt.len);
    c->len += pkt.len;
    rt_msg_view_t v;
    svc->msg_view(msg, &v);
    if (v.id.len && v.id.len < sizeof(c->last_id)) {
        memcpy(c->last_id, v.id.base, v.id.len);
        c->last_id_len = v.id.len;
    }
    svc->sub_timer(sub, 0, 0, get_answer); /* with whatever else arrives in this loop turn */
}

static void sio_gap(rt_sub_t *sub, rt_str_t from)
{
    sio_conn_t *c = svc->sub_data(sub);
    c->gap = 1;
    if (c->kind == CONN_WS) {
        sio_io_t io = {sub, &c->st, NULL, 0};
        sio_gap_packet(&io, from);
    } else if (c->kind == CONN_GET) {
        char buf[128];
        int n = snprintf(buf, sizeof(buf), "42[\"rt.gap\",{\"from\":\"%.*s\"}]", (int)(from.len > 64 ? 64 : from.len), from.base);
        if (c->len + (size_t)n + 1 > c->cap) {
            c->cap = c->len + (size_t)n + 1024;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL)
                abort();
        }
        if (c->len)
            c->buf[c->len++] = '\x1e';
        memcpy(c->buf + c->len, buf, (size_t)n);
        c->len += (size_t)n;
    }
}

static void sio_end(rt_sub_t *sub, rt_end_reason_t why)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->kind == CONN_WS)
        sio_ws_close(sub, why == RT_END_SLOW ? 1013 : why == RT_END_EXPIRED ? 4001 : 1001,
                     why == RT_END_SLOW ? "slow consumer" : why == RT_END_EXPIRED ? "token expired" : "server shutdown");
    else if (c->kind == CONN_GET)
        get_answer(sub);
    else
        svc->sub_close(sub);
}

static void sio_release(rt_sub_t *sub)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->kind == CONN_GET && !c->answered) { /* the client went away mid-poll */
        pthread_mutex_lock(&sio_lock);
        sio_session_t *s = sio_session_find(c->sid, SIO_ID_LEN);
        if (s)
            s->get_held = 0;
        pthread_mutex_unlock(&sio_lock);
    }
    if (c->kind == CONN_WS)
        sio_ws_release(sub, c);
    sio_connect_release(sub, c);
    free(c->buf);
}

static size_t sio_receive(rt_sub_t *sub, const char *bytes, size_t len) { return sio_ws_receive(sub, bytes, len); }

/* WebSocket only: a polling GET lives a few seconds, and the next one authenticates again. */
static void sio_expiring_cb(rt_sub_t *sub, int64_t seconds_left)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->kind == CONN_WS && c->st.connected) {
        sio_io_t io = {sub, &c->st, NULL, 0};
        sio_expiring(&io, seconds_left);
    }
}

static void sio_dropped_cb(rt_sub_t *sub, rt_str_t pattern)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->kind == CONN_WS && c->st.connected) {
        sio_io_t io = {sub, &c->st, NULL, 0};
        sio_dropped(&io, pattern);
    }
}

static const rt_cfg_key_t sio_config[] = {
    {"ping_interval", RT_CFG_DURATION, "25s", 100, 3600000},
    {"ping_timeout", RT_CFG_DURATION, "20s", 100, 3600000},
    {"max_payload", RT_CFG_SIZE, "1000000", 1024, 1 << 30},
    {"max_sessions", RT_CFG_INT, "100000", 1, 10000000},
    {"recovery_window", RT_CFG_DURATION, "2m", 0, 86400000},
    {"echo", RT_CFG_BOOL, "false", 0, 0},
    {NULL, 0, NULL, 0, 0},
};

const uint32_t rt_transport_v1_flags = RT_TRANSPORT_ANY_METHOD; /* polling POSTs its packets */

const rt_transport_t rt_transport_v1 = {
    .abi_version = RT_PLUGIN_ABI_VERSION,
    .name = "socketio",
    .paths = sio_paths,
    .config = sio_config,
    .cache_slots = 2,
    .init = sio_init,
    .claims = sio_claims,
    .start = sio_start,
    .deliver = sio_deliver,
    .gap = sio_gap,
    .end = sio_end,
    .release = sio_release,
    .receive = sio_receive,
    .expiring = sio_expiring_cb,
    .dropped = sio_dropped_cb,
    .fini = sio_fini,
};
