/*
 * Long-poll transport: /poll and /sub/... requests that neither upgrade nor ask for
 * SSE. Stateless on the server: the cursor a client sends back names everything it
 * has seen, so any node can answer the next poll. Retained messages after the cursor
 * are answered at once; otherwise the request is held until the first new message
 * (batched to the end of that loop turn) or the timeout.
 * Written only against include/rtbroker/plugin.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtbroker/plugin.h"

typedef struct lp_sub {
    rt_msg_t **msgs;
    size_t count, cap, bytes;
    rt_msg_t *last_stored; /* the newest message with an id in the answer */
    /* full: a stored message was left out; the broker's cursor has moved past it, so the answer's cursor is
     * last_stored's id, or where this poll started */
    int gap, full;
    char start[64];
    size_t start_len;
    rt_str_t disconnect; /* set when the server API ended it */
} lp_sub_t;

static const rt_services_t *svc;
static int64_t default_timeout_ms, max_timeout_ms;
static size_t max_messages, max_topics, max_bytes;
extern const rt_transport_t rt_transport_v1;

static int lp_init(const rt_services_t *services)
{
    svc = services;
    default_timeout_ms = svc->cfg_int("longpoll", "timeout");
    max_timeout_ms = svc->cfg_int("longpoll", "max_timeout");
    max_messages = (size_t)svc->cfg_int("longpoll", "max_messages");
    max_topics = (size_t)svc->cfg_int("limits", "max_topics");
    max_bytes = (size_t)svc->cfg_int("limits", "max_queue_bytes"); /* what an answer holds, as a stream's backlog */
    if (default_timeout_ms > max_timeout_ms)
        default_timeout_ms = max_timeout_ms; /* "at most longpoll.max_timeout" */
    return 0;
}

/* Everything on /sub that no other transport claims. */
static int lp_claims(rt_request_t *req)
{
    (void)req;
    return 1;
}

#define LIT(s) ((rt_str_t){(s), sizeof(s) - 1})

/* The cursor to hand back: never past a message this answer leaves out. */
static rt_str_t answer_cursor(rt_sub_t *sub, lp_sub_t *s)
{
    if (!s->full)
        return svc->sub_cursor(sub);
    if (s->last_stored != NULL) {
        rt_msg_view_t v;
        svc->msg_view(s->last_stored, &v);
        return v.id;
    }
    return s->start_len ? (rt_str_t){s->start, s->start_len} : svc->sub_cursor(sub);
}

static void answer(rt_sub_t *sub)
{
    lp_sub_t *s = svc->sub_data(sub);
    rt_str_t cursor = answer_cursor(sub, s);
    rt_str_t client = svc->sub_client(sub), key = svc->sub_client_key(sub);
    /* one per subscriber per message: built by hand rather than with snprintf */
    size_t nparts = 0;
    rt_str_t *parts = malloc((s->count * 2 + 11) * sizeof(*parts)); /* the most parts below: 11, and 2 per message */
    if (parts == NULL)
        abort();
    parts[nparts++] = LIT("{\"cursor\":\"");
    parts[nparts++] = cursor;
    if (client.len) { /* the id as join events show it, and the key that continues it (client=) */
        parts[nparts++] = LIT("\",\"client\":\"");
        parts[nparts++] = client;
        parts[nparts++] = LIT("\",\"client_key\":\"");
        parts[nparts++] = key;
    }
    parts[nparts++] = s->gap ? LIT("\",\"gap\":true,\"messages\":[") : LIT("\",\"gap\":false,\"messages\":[");
    size_t bytes = 0;
    for (size_t i = 0; i < s->count; i++) {
        if (i)
            parts[nparts++] = LIT(",");
        parts[nparts] = svc->msg_envelope(s->msgs[i]);
        bytes += parts[nparts++].len;
    }
    parts[nparts++] = LIT("]");
    if (s->disconnect.len) { /* the server API ended it: "disconnect":{"reason","reconnect"} */
        parts[nparts++] = LIT(",\"disconnect\":");
        parts[nparts++] = s->disconnect;
    }
    parts[nparts++] = LIT("}\n");
    svc->count_delivered(&rt_transport_v1, s->count, bytes);
    svc->sub_respond(sub, 200, "application/json", parts, nparts);
    free(parts);
}

static void on_timeout(rt_sub_t *sub) { answer(sub); }

static void lp_start(rt_request_t *req)
{
    rt_str_t topics[1024];
    int n = svc->req_topics(req, topics, max_topics < 1024 ? max_topics : 1024);
    if (n < 0) {
        svc->respond_error(req, n, NULL);
        return;
    }
    int64_t timeout_ms = default_timeout_ms;
    rt_str_t t;
    if (svc->req_query(req, "timeout", 0, &t)) {
        char buf[16];
        char *end;
        if (t.len == 0 || t.len >= sizeof(buf)) {
            svc->respond_error(req, RT_EINVAL, "timeout must be a number of seconds");
            return;
        }
        memcpy(buf, t.base, t.len);
        buf[t.len] = '\0';
        long v = strtol(buf, &end, 10);
        if (*end != '\0' || v < 0) {
            svc->respond_error(req, RT_EINVAL, "timeout must be whole seconds (0 or more)");
            return;
        }
        timeout_ms = v * 1000 > max_timeout_ms ? max_timeout_ms : v * 1000; /* capped, as nchan does */
    }
    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, sizeof(lp_sub_t));
    rt_sub_opts_t opts = {topics, (size_t)n, svc->req_since(req), max_messages};
    int err = svc->subscribe(sub, &opts);
    if (err != RT_OK) {
        svc->respond_error(req, err, NULL);
        return;
    }
    /* a member between polls too (presence.poll_grace), under the client key the answer hands back */
    int joined = svc->presence_request(sub, RT_PRESENCE_LINGER);
    if (joined == RT_EFORBIDDEN) {
        svc->respond_error(req, RT_EFORBIDDEN, "presence is off for this topic (topics: presence: false)");
        return;
    }
    if (joined == RT_ETOPIC) {
        svc->respond_error(req, RT_ETOPIC, "presence=1 needs exact topics; presence=TOPIC must name an exact topic of this subscription");
        return;
    }
    if (joined == RT_EID) {
        svc->respond_error(req, RT_EID, "client= is not a client_key this broker gave to this user; poll without client= "
                                        "for a new one (a cluster's nodes need the same presence.client_secret)");
        return;
    }
    lp_sub_t *s = svc->sub_data(sub);
    rt_str_t start = svc->sub_cursor(sub);
    if (start.len <= sizeof(s->start)) { /* ids are at most 53 bytes */
        memcpy(s->start, start.base, start.len);
        s->start_len = start.len;
    }
    if (s->count > 0 || s->gap) {
        answer(sub);
        return;
    }
    if (timeout_ms == 0) { /* at the end of this loop turn, or once a replay the bus completes later is there */
        svc->sub_timer(sub, 0, 0, on_timeout);
        return;
    }
    svc->sub_timer(sub, 0, (uint64_t)timeout_ms, on_timeout);
    /* while it waits, an HTTP/1.1 poll costs the broker little more than its subscription: the head goes now */
    static const char *const headers[] = {"content-type", "application/json", "cache-control", "no-store", NULL};
    svc->sub_hold(sub, (uint64_t)timeout_ms, 200, headers);
}

static void lp_deliver(rt_sub_t *sub, rt_msg_t *msg)
{
    lp_sub_t *s = svc->sub_data(sub);
    rt_msg_view_t v;
    svc->msg_view(msg, &v);
    /* an answer holds at most longpoll.max_messages, and limits.max_queue_bytes of envelopes past its first stored
     * message; what is left out comes with the next poll, whose cursor is the last stored message handed over */
    size_t len = s->full || s->count == max_messages ? 0 : svc->msg_envelope(msg).len;
    if (s->full || s->count == max_messages ||
        (s->count > 0 && s->bytes + len > max_bytes && (s->last_stored != NULL || v.seq == 0))) {
        s->full |= v.seq != 0;
        return;
    }
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->msgs = realloc(s->msgs, s->cap * sizeof(*s->msgs));
        if (s->msgs == NULL)
            abort();
    }
    s->msgs[s->count++] = svc->msg_ref(msg);
    s->bytes += len;
    if (v.seq != 0)
        s->last_stored = msg;
    svc->sub_timer(sub, 0, 0, on_timeout); /* answer at the end of this loop turn, with whatever else arrived */
}

static void lp_gap(rt_sub_t *sub, rt_str_t from)
{
    (void)from;
    lp_sub_t *s = svc->sub_data(sub);
    s->gap = 1;
    svc->sub_timer(sub, 0, 0, on_timeout); /* a replay the bus completed later: answer now */
}

static void lp_end(rt_sub_t *sub, rt_end_reason_t why)
{
    if (why == RT_END_EXPIRED) {
        const rt_str_t body = LIT("{\"error\":\"unauthorized\",\"message\":\"the token expired\"}\n");
        svc->sub_respond(sub, 401, "application/json", &body, 1);
        return;
    }
    if (why == RT_END_DISCONNECT)
        svc->sub_disconnect_info(sub, &((lp_sub_t *)svc->sub_data(sub))->disconnect);
    answer(sub); /* shutdown or disconnect: hand over what we have (a disconnect says so) */
}

static void lp_release(rt_sub_t *sub)
{
    lp_sub_t *s = svc->sub_data(sub);
    for (size_t i = 0; i < s->count; i++)
        svc->msg_unref(s->msgs[i]);
    free(s->msgs);
}

static const char *const lp_paths[] = {"/poll", NULL};
static const rt_cfg_key_t lp_config[] = {
    {"timeout", RT_CFG_DURATION, "25s", 0, 3600000},
    {"max_timeout", RT_CFG_DURATION, "60s", 1000, 3600000},
    {"max_messages", RT_CFG_INT, "1000", 1, 100000},
    {NULL, 0, NULL, 0, 0},
};

const rt_transport_t rt_transport_v1 = {
    .abi_version = RT_PLUGIN_ABI_VERSION,
    .name = "longpoll",
    .paths = lp_paths,
    .config = lp_config,
    .cache_slots = 0,
    .init = lp_init,
    .claims = lp_claims,
    .start = lp_start,
    .deliver = lp_deliver,
    .gap = lp_gap,
    .end = lp_end,
    .release = lp_release,
};
