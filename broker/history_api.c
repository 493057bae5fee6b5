/*
 * GET /history/{topic}: retained messages on demand, answered at once in the long-poll
 * shape. `since=ID` pages forward (oldest first after ID), `before=ID` pages back (the
 * `limit` just before ID, still oldest first); neither gives the latest `limit`.
 * Wildcards allowed; subscribe permission is required for every pattern.
 */
#include <stdio.h>
#include <stdlib.h>

#include "auth.h"
#include "bus.h"
#include "config.h"
#include "history_api.h"
#include "hub.h"
#include "http.h"
#include "presence.h"

/* A request whose answer waits for the bus (NATS: fetched from JetStream). */
typedef struct history_req {
    h2o_req_t *req;            /* NULL once the client went away */
    struct history_req **anchor; /* in the request's pool */
    rt_replay_t r;
    int foreign;
    char since[RT_ID_MAX + 1]; /* r.since points here: the request may go before the bus reads it */
} history_req_t;

static void on_req_dispose(void *p)
{
    history_req_t *h = *(history_req_t **)p;
    if (h)
        h->req = NULL, h->anchor = NULL;
}

static void on_replayed(void *ctx, rt_replay_t *rp, int err)
{
    history_req_t *h = ctx;
    rt_replay_t *r = &h->r;
    h2o_req_t *req = h->req;
    (void)rp;
    if (h->anchor)
        *h->anchor = NULL;
    if (req == NULL) {
        rt_replay_release(r);
        free(h);
        return;
    }
    if (err != RT_OK) {
        rt_replay_release(r);
        free(h);
        rt_http_error(req, err, "the bus is not available");
        return;
    }
    rt_str_t epoch = rt_bus->ops->epoch(rt_bus);
    /* the answer is msgs[lo, hi): at most limits.max_queue_bytes of envelopes (at least one), the oldest when paging
     * forward, the newest otherwise; the cursor continues from there */
    size_t lo = 0, hi = r->count, bytes = 0;
    for (size_t k = 0; k < r->count; k++) {
        size_t i = r->has_since ? k : r->count - 1 - k, len = rt_msg_envelope(r->msgs[i]).len;
        if (k > 0 && bytes + len > rt_lim.max_queue_bytes) {
            *(r->has_since ? &hi : &lo) = r->has_since ? i : i + 1;
            break;
        }
        bytes += len;
    }
    char cursor[RT_ID_MAX + 1];
    if (r->has_since)
        rt_id_format(cursor, epoch, hi ? r->msgs[hi - 1]->seq : r->head);
    else if (hi > lo)
        rt_id_format(cursor, epoch, r->msgs[lo]->seq);
    else
        rt_id_format(cursor, epoch, r->before == UINT64_MAX ? r->head + 1 : r->before);
    rt_buf_t b = {0};
    rt_buf_printf(&b, "{\"cursor\":\"%s\",\"gap\":%s,\"messages\":[", cursor,
                  (r->gap && lo == 0) || h->foreign ? "true" : "false"); /* lo > 0: older ones are still retained */
    for (size_t i = lo; i < hi; i++) {
        if (i > lo)
            rt_buf_appendc(&b, ",");
        rt_buf_appends(&b, rt_msg_envelope(r->msgs[i]));
    }
    rt_buf_appendc(&b, "]}\n");
    rt_replay_release(r);
    free(h);
    rt_http_respond_buf(req, 200, "application/json", &b);
}

void rt_history_handle(h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
        rt_http_error_status(req, 405, "method_not_allowed", "read history with GET /history/{topic}");
        return;
    }
    size_t max_topics = (size_t)rt_cfg_int("limits.max_topics");
    rt_str_t topics[1024];
    int n = rt_req_topics(req, topics, max_topics < 1024 ? max_topics : 1024);
    if (n < 0) {
        rt_http_error(req, n, n == RT_ETOOMANY ? "too many topics (limits.max_topics)"
                                               : "give topics as /history/{topic} or ?topic=A&topic=B (wildcards allowed)");
        return;
    }
    const char *why = NULL;
    rt_ident_t *id = NULL;
    int err = rt_auth_identify(req, &id, &why);
    for (int i = 0; i < n && err == RT_OK; i++)
        err = rt_auth_allows(id, topics[i], 0);
    rt_ident_free(id);
    if (err != RT_OK) {
        rt_http_error(req, err, err == RT_EFORBIDDEN ? "the token does not allow reading this topic"
                                                    : "a token allowing subscribe to this topic is required");
        return;
    }
    size_t max = (size_t)rt_cfg_int("history.max_messages"), limit = max < 100 ? max : 100;
    rt_str_t v, since = {NULL, 0}, before = {NULL, 0};
    if (rt_req_query(req, "limit", 0, &v)) {
        char buf[16], *end;
        snprintf(buf, sizeof(buf), "%.*s", (int)(v.len < 15 ? v.len : 15), v.base);
        long l = strtol(buf, &end, 10);
        if (v.len == 0 || v.len > 15 || *end || l < 1) {
            rt_http_error(req, RT_EINVAL, "limit must be a whole number from 1 to history.max_messages");
            return;
        }
        limit = (size_t)l > max ? max : (size_t)l;
    }
    rt_req_query(req, "since", 0, &since);
    rt_req_query(req, "before", 0, &before);
    if (since.len && before.len) {
        rt_http_error(req, RT_EINVAL, "give since (page forward) or before (page back), not both");
        return;
    }
    rt_replay_t r = {0};
    r.patterns = topics;
    r.npatterns = (size_t)n;
    r.max = limit;
    rt_str_t epoch = rt_bus->ops->epoch(rt_bus);
    int foreign = 0;
    rt_id_t bid;
    if (since.len) {
        if (rt_id_parse(since, &r.since) != RT_OK) {
            rt_http_error(req, RT_EID, "since must be an id EPOCH:SEQ given by this broker");
            return;
        }
        r.has_since = 1;
    } else {
        r.has_before = 1;
        r.before = UINT64_MAX;
        if (before.len) {
            if (rt_id_parse(before, &bid) != RT_OK) {
                rt_http_error(req, RT_EID, "before must be an id EPOCH:SEQ given by this broker");
                return;
            }
            if (rt_str_eq(bid.epoch, epoch))
                r.before = bid.seq;
            else
                foreign = 1; /* another history: the newest of this one, flagged */
        }
    }
    history_req_t *h = rt_calloc(1, sizeof(*h));
    h->r = r;
    h->foreign = foreign;
    h->req = req;
    if (r.has_since) {
        size_t n = since.len < sizeof(h->since) ? since.len : sizeof(h->since) - 1;
        memcpy(h->since, since.base, n);
        rt_id_parse(rt_str(h->since, n), &h->r.since);
    }
    err = rt_bus->ops->replay(rt_bus, &h->r, on_replayed, h);
    if (err == RT_REPLAY_PENDING) { /* answered from on_replayed, unless the client goes first */
        h->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*h->anchor), on_req_dispose);
        *h->anchor = h;
        return;
    }
    h->r.patterns = NULL, h->r.npatterns = 0;
    on_replayed(h, &h->r, err);
}

/* GET /presence/{topic}: who is there now (one exact topic), with subscribe permission. */
void rt_presence_handle(h2o_req_t *req)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
        rt_http_error_status(req, 405, "method_not_allowed", "read presence with GET /presence/{topic}");
        return;
    }
    rt_str_t topic;
    int wild = 0, n = rt_req_topics(req, &topic, 1);
    if (n == 1)
        rt_topic_check(topic, 1, &wild);
    if (n != 1 || wild) {
        rt_http_error(req, n == RT_ETOOMANY ? RT_ETOOMANY : RT_ETOPIC,
                      "give one exact topic as /presence/{topic} or ?topic= (presence has no wildcards)");
        return;
    }
    const char *why = NULL;
    rt_ident_t *id = NULL;
    int err = rt_auth_identify(req, &id, &why);
    if (err == RT_OK)
        err = rt_auth_allows(id, topic, 0);
    rt_ident_free(id);
    if (err != RT_OK) {
        rt_http_error(req, err, err == RT_EFORBIDDEN ? "the token does not allow subscribing to this topic"
                                                    : "a token allowing subscribe to this topic is required");
        return;
    }
    rt_buf_t b = {0};
    rt_presence_snapshot(topic, &b);
    rt_buf_appendc(&b, "\n");
    rt_http_respond_buf(req, 200, "application/json", &b);
}
