/*
 * Socket.IO under proxy.subscribe: nothing subscribes without the application backend's yes (the subscribe_ask
 * service). A subscribe event and each topic of a CONNECT (auth.topics, and those a recovery brings back) wait for
 * their verdict; a WebSocket that takes over a polling session asks again for the session's topics (it is another
 * connection). A polling session keeps what was allowed in its state: its polls re-subscribe those topics without
 * asking (the broker lets a session's polls do so). The verdict comes on the subscriber that asked: a WebSocket, or
 * the POST that carried the packet, whose answer waits for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sio.h"

#define svc sio_svc

int sio_proxy_connect, sio_proxy_sub;

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (p == NULL)
        abort();
    return p;
}

void sio_post_settle(rt_sub_t *sub, sio_conn_t *c)
{
    if (--c->pending == 0 && c->parsed)
        svc->sub_respond(sub, 200, "text/html", &(rt_str_t){"ok", 2}, 1);
}

/* Where a verdict applies: the WebSocket's own state, or (polling, sio_lock taken) its session's. 0 when the
 * session is gone. */
static int io_of(rt_sub_t *sub, sio_conn_t *c, sio_io_t *io)
{
    if (c->kind == CONN_WS) {
        *io = (sio_io_t){sub, &c->st, NULL, 0};
        return 1;
    }
    pthread_mutex_lock(&sio_lock);
    sio_session_t *s = sio_session_find(c->sid, strlen(c->sid));
    if (s == NULL || s->dead) {
        pthread_mutex_unlock(&sio_lock);
        return 0;
    }
    *io = (sio_io_t){sub, &s->st, s, 1};
    return 1;
}

static void io_done(sio_io_t *io)
{
    if (io->polling)
        pthread_mutex_unlock(&sio_lock);
}

/* rt.dropped for a topic the backend (or the token) refused when it came back */
static void dropped(sio_io_t *io, rt_str_t topic, int err)
{
    char buf[600];
    int n = snprintf(buf, sizeof(buf), "42[\"rt.dropped\",{\"topic\":\"%.*s\",\"error\":\"%s\"}]",
                     (int)(topic.len > 255 ? 255 : topic.len), topic.base, svc->strerror(err));
    sio_send(io, buf, (size_t)n);
}

/* ---------- subscribe(topic | {topic, since, presence}) ---------- */

typedef struct sub_ask {
    int64_t ack_id;
    int presence;
    size_t topic_len, since_len;
    char since[SIO_CURSOR_MAX];
    char topic[]; /* topic_len bytes */
} sub_ask_t;

static void on_subscribe_verdict(rt_sub_t *sub, int err, const char *why, void *arg)
{
    sub_ask_t *a = arg;
    sio_conn_t *c = svc->sub_data(sub);
    sio_io_t io;
    if (io_of(sub, c, &io)) {
        if (err != RT_OK)
            sio_ack_error(&io, a->ack_id, svc->strerror(err), why);
        else
            sio_subscribe_now(&io, a->ack_id, (rt_str_t){a->topic, a->topic_len}, (rt_str_t){a->since, a->since_len},
                              a->presence);
        io_done(&io);
    }
    if (c->kind == CONN_POST)
        sio_post_settle(sub, c);
    free(a);
}

void sio_subscribe_ask(sio_io_t *io, int64_t ack_id, rt_str_t topic, rt_str_t since, int presence)
{
    sub_ask_t *a = xcalloc(1, sizeof(*a) + topic.len);
    a->ack_id = ack_id, a->presence = presence;
    memcpy(a->topic, topic.base, topic.len);
    a->topic_len = topic.len;
    memcpy(a->since, since.base, since.len < sizeof(a->since) ? since.len : 0);
    a->since_len = since.len < sizeof(a->since) ? since.len : 0;
    sio_conn_t *c = svc->sub_data(io->sub);
    if (c->kind == CONN_POST)
        c->pending++; /* the POST's answer waits for the verdict */
    if (svc->subscribe_ask(io->sub, (rt_str_t){a->topic, a->topic_len}, on_subscribe_verdict, a) == 0) {
        on_subscribe_verdict(io->sub, RT_OK, "", a); /* no proxy after all */
    }
}

/* ---------- CONNECT ---------- */

typedef struct topic_ask {
    size_t idx;
} topic_ask_t;

static void connect_finish(sio_io_t *io, sio_conn_t *c)
{
    sio_connect_t *k = c->connecting;
    c->connecting = NULL;
    io->st->connecting = 0;
    if (k->err == RT_OK) {
        size_t n = 0;
        for (size_t i = 0; i < k->want.ntopics; i++) { /* keep what was subscribed */
            if (k->ok[i])
                k->want.topics[n++] = k->want.topics[i];
            else
                free(k->want.topics[i].pattern);
        }
        k->want.ntopics = n;
        sio_connect_done(io, k);
    } else {
        for (size_t i = 0; !io->polling && i < k->want.ntopics; i++)
            if (k->ok[i])
                svc->unsubscribe(io->sub, (rt_str_t){k->want.topics[i].pattern, k->want.topics[i].len});
        io->st->connected = 0;
        sio_connect_error(io, svc->strerror(k->err), k->why);
    }
    sio_topics_clear(&k->want);
    free(k->from_auth);
    free(k->ok);
    free(k);
}

/* One verdict in; the CONNECT is answered once none is awaited. */
static void connect_note(rt_sub_t *sub, sio_conn_t *c)
{
    sio_connect_t *k = c->connecting;
    if (k == NULL || --k->waiting > 0)
        return;
    sio_io_t io;
    if (io_of(sub, c, &io)) {
        connect_finish(&io, c);
        io_done(&io);
    } else {
        sio_connect_release(sub, c);
    }
    if (c->kind == CONN_POST)
        sio_post_settle(sub, c);
}

static void on_topic_verdict(rt_sub_t *sub, int err, const char *why, void *arg)
{
    size_t i = ((topic_ask_t *)arg)->idx;
    free(arg);
    sio_conn_t *c = svc->sub_data(sub);
    sio_connect_t *k = c->connecting;
    if (k == NULL)
        return;
    sio_topic_t *t = &k->want.topics[i];
    rt_str_t name = {t->pattern, t->len};
    if (err == RT_OK) { /* subscribed from within the verdict, as the broker wants */
        rt_sub_opts_t o = {&name, 1, {k->from, k->from_len}, 0};
        err = svc->subscribe(sub, &o);
        why = err == RT_EFORBIDDEN ? "the token does not allow subscribing to these topics" : "cannot subscribe";
        k->ok[i] = err == RT_OK;
    }
    if (err != RT_OK && k->from_auth[i] && k->err == RT_OK) {
        k->err = err;
        snprintf(k->why, sizeof(k->why), "%s", why);
    } else if (err != RT_OK && !k->from_auth[i]) {
        sio_io_t io; /* a recovered topic the backend or the token refuses now: dropped, the rest recovers */
        if (io_of(sub, c, &io)) {
            dropped(&io, name, err);
            io_done(&io);
        }
    }
    connect_note(sub, c);
}

void sio_connect_ask(sio_io_t *io, sio_connect_t *kin, size_t nrecovered, const size_t *auth_at, size_t nauth)
{
    sio_conn_t *c = svc->sub_data(io->sub);
    sio_connect_t *k = xcalloc(1, sizeof(*k));
    *k = *kin;
    size_t n = k->want.ntopics;
    k->from_auth = xcalloc(n, 1);
    k->ok = xcalloc(n, 1);
    for (size_t i = 0; i < nauth; i++)
        k->from_auth[auth_at[i]] = 1;
    for (size_t i = nrecovered; i < n; i++)
        k->from_auth[i] = 1;
    c->connecting = k;
    io->st->connecting = 1;
    if (!io->polling)
        io->st->connected = 1; /* the replay goes out before the CONNECT answer; the client holds it until then */
    if (c->kind == CONN_POST)
        c->pending++; /* the POST's answer waits for the CONNECT's */
    k->waiting = n + 1; /* held while asking: verdicts given at once must not answer under the loop */
    rt_sub_t *sub = io->sub; /* (polling: sio_lock is held, and taken again by verdicts given at once) */
    for (size_t i = 0; i < n && c->connecting == k; i++) {
        topic_ask_t *a = xcalloc(1, sizeof(*a));
        a->idx = i;
        if (svc->subscribe_ask(sub, (rt_str_t){k->want.topics[i].pattern, k->want.topics[i].len}, on_topic_verdict, a) == 0)
            on_topic_verdict(sub, RT_OK, "", a);
    }
    if (c->connecting == k)
        connect_note(sub, c);
}

void sio_connect_release(rt_sub_t *sub, sio_conn_t *c)
{
    (void)sub;
    sio_connect_t *k = c->connecting;
    if (k == NULL)
        return;
    c->connecting = NULL;
    if (c->kind == CONN_POST) { /* the session may CONNECT again */
        pthread_mutex_lock(&sio_lock);
        sio_session_t *s = sio_session_find(c->sid, strlen(c->sid));
        if (s)
            s->st.connecting = 0;
        pthread_mutex_unlock(&sio_lock);
    }
    sio_topics_clear(&k->want);
    free(k->from_auth);
    free(k->ok);
    free(k);
}

/* ---------- the upgrade: a polling session's topics on its new WebSocket ---------- */

static void on_adopt_verdict(rt_sub_t *sub, int err, const char *why, void *arg)
{
    (void)why;
    sub_ask_t *a = arg;
    sio_conn_t *c = svc->sub_data(sub);
    sio_io_t io = {sub, &c->st, NULL, 0};
    rt_str_t t = {a->topic, a->topic_len};
    int i = sio_topic_find(&c->st, a->topic, a->topic_len);
    if (i >= 0 && c->st.connected) { /* not unsubscribed meanwhile */
        rt_sub_opts_t o = {&t, 1, {a->since, a->since_len}, 0};
        if (err == RT_OK)
            err = svc->subscribe(sub, &o);
        if (err == RT_OK && c->st.topics[i].presence)
            svc->presence_join(sub, t, (rt_str_t){c->st.client, c->st.client_len}, 0);
        if (err != RT_OK) {
            free(c->st.topics[i].pattern);
            c->st.topics[i] = c->st.topics[--c->st.ntopics];
            sio_token_update(&c->st);
            dropped(&io, t, err);
        }
    }
    free(a);
}

void sio_adopt_ask(rt_sub_t *sub, sio_conn_t *c)
{
    sio_state_t *st = &c->st;
    const char *why;
    if (st->token && svc->authenticate(sub, (rt_str_t){st->token, st->token_len}, &why) != RT_OK) {
        sio_state_free(st, 0);
        sio_ws_send(sub, "41", 2);
        return;
    }
    /* a copy of the list: a verdict given at once may drop a topic */
    size_t n = st->ntopics;
    sub_ask_t **asks = xcalloc(n, sizeof(*asks));
    for (size_t i = 0; i < n; i++) {
        sub_ask_t *a = asks[i] = xcalloc(1, sizeof(*a) + st->topics[i].len);
        memcpy(a->topic, st->topics[i].pattern, st->topics[i].len);
        a->topic_len = st->topics[i].len;
        memcpy(a->since, st->cursor, st->cursor_len);
        a->since_len = st->cursor_len;
    }
    for (size_t i = 0; i < n; i++)
        if (svc->subscribe_ask(sub, (rt_str_t){asks[i]->topic, asks[i]->topic_len}, on_adopt_verdict, asks[i]) == 0)
            on_adopt_verdict(sub, RT_OK, "", asks[i]);
    free(asks);
}
