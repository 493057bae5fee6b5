/*
 * Server-Sent Events transport: `Accept: text/event-stream` on /sub/... and /sse.
 * Each message is encoded once per variant (plain: id/event/data lines; envelope:
 * one JSON data line) in the message's cache and the same bytes are queued to every
 * subscriber. Heartbeat comments keep proxies open and reveal dead peers.
 * Written only against include/rtbroker/plugin.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtbroker/plugin.h"
#include "sse_encode.h"

enum { SLOT_PLAIN = 0, SLOT_ENVELOPE = 1 };

typedef struct sse_sub {
    int envelope;
} sse_sub_t;

static const rt_services_t *svc;
static uint64_t heartbeat_ms, retry_ms;
static size_t max_topics;
extern const rt_transport_t rt_transport_v1;

static int sse_init(const rt_services_t *services)
{
    svc = services;
    heartbeat_ms = (uint64_t)svc->cfg_int("sse", "heartbeat");
    retry_ms = (uint64_t)svc->cfg_int("sse", "retry");
    max_topics = (size_t)svc->cfg_int("limits", "max_topics");
    return 0;
}

static int contains(rt_str_t hay, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= hay.len; i++)
        if (strncasecmp(hay.base + i, needle, n) == 0)
            return 1;
    return 0;
}

static int sse_claims(rt_request_t *req) { return contains(svc->req_header(req, "accept"), "text/event-stream") ? 10 : 0; }

static rt_str_t encode(rt_msg_t *msg, int slot)
{
    rt_msg_view_t v;
    svc->msg_view(msg, &v);
    if (slot == SLOT_ENVELOPE)
        return sse_encode(v.id, rt_str_empty, svc->msg_envelope(msg));
    return sse_encode(v.id, v.event, v.data);
}

static void on_heartbeat(rt_sub_t *sub)
{
    static const char ping[] = ": ping\n\n";
    if (svc->write_ref(sub, (rt_str_t){ping, sizeof(ping) - 1}, NULL) == RT_OK)
        svc->sub_timer(sub, 0, heartbeat_ms, on_heartbeat);
}

static void sse_start(rt_request_t *req)
{
    rt_str_t topics[1024];
    int n = svc->req_topics(req, topics, max_topics < 1024 ? max_topics : 1024);
    if (n < 0) {
        svc->respond_error(req, n, NULL);
        return;
    }
    rt_str_t env;
    int envelope = svc->req_query(req, "envelope", 0, &env) && (env.len == 0 || (env.len == 1 && env.base[0] == '1') ||
                                                                 (env.len == 4 && memcmp(env.base, "true", 4) == 0));
    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, sizeof(sse_sub_t));
    sse_sub_t *s = svc->sub_data(sub);
    s->envelope = envelope;

    char pre[64];
    int len = snprintf(pre, sizeof(pre), "retry: %llu\n: ok\n\n", (unsigned long long)retry_ms);
    svc->write_copy(sub, pre, (size_t)len);
    rt_sub_opts_t opts = {topics, (size_t)n, svc->req_since(req), 0};
    int err = svc->subscribe(sub, &opts);
    if (err != RT_OK) {
        svc->respond_error(req, err, NULL);
        return;
    }
    if (svc->presence_request(sub, 0) == RT_ETOPIC) {
        svc->respond_error(req, RT_ETOPIC, "presence=1 needs exact topics; presence=TOPIC must name an exact topic of this subscription");
        return;
    }
    static const char *const headers[] = {"content-type", "text/event-stream", "cache-control", "no-cache",
                                          "x-accel-buffering", "no", NULL};
    svc->stream_start(sub, 200, headers);
    svc->sub_timer(sub, 0, rt_heartbeat_first_ms(heartbeat_ms, sub), on_heartbeat);
}

static void sse_deliver(rt_sub_t *sub, rt_msg_t *msg)
{
    sse_sub_t *s = svc->sub_data(sub);
    rt_msg_view_t v;
    svc->msg_view(msg, &v);
    int plain = !s->envelope || (v.flags & (RT_MSG_JOIN | RT_MSG_LEAVE)); /* presence: event rt.join/rt.leave as is */
    rt_str_t bytes = svc->msg_encoded(msg, &rt_transport_v1, plain ? SLOT_PLAIN : SLOT_ENVELOPE, encode);
    if (svc->write_ref(sub, bytes, msg) == RT_OK)
        svc->count_delivered(&rt_transport_v1, 1, bytes.len);
}

static void sse_gap(rt_sub_t *sub, rt_str_t from)
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "event: rt.gap\ndata: {\"from\":\"%.*s\"}\n\n", (int)(from.len > 64 ? 64 : from.len),
                     from.base);
    svc->write_copy(sub, buf, (size_t)n);
}

static void sse_end(rt_sub_t *sub, rt_end_reason_t why)
{
    static const char shutdown[] = "event: rt.shutdown\ndata: {}\n\n", expired[] = "event: rt.expired\ndata: {}\n\n";
    if (why == RT_END_SHUTDOWN)
        svc->write_ref(sub, (rt_str_t){shutdown, sizeof(shutdown) - 1}, NULL);
    else if (why == RT_END_EXPIRED)
        svc->write_ref(sub, (rt_str_t){expired, sizeof(expired) - 1}, NULL);
    svc->sub_close(sub);
}

static void sse_release(rt_sub_t *sub) { (void)sub; }

static const char *const sse_paths[] = {"/sse", NULL};
static const rt_cfg_key_t sse_config[] = {
    {"heartbeat", RT_CFG_DURATION, "15s", 100, 3600000},
    {"retry", RT_CFG_DURATION, "3s", 0, 3600000},
    {NULL, 0, NULL, 0, 0},
};

const rt_transport_t rt_transport_v1 = {
    .abi_version = RT_PLUGIN_ABI_VERSION,
    .name = "sse",
    .paths = sse_paths,
    .config = sse_config,
    .cache_slots = 2,
    .init = sse_init,
    .claims = sse_claims,
    .start = sse_start,
    .deliver = sse_deliver,
    .gap = sse_gap,
    .end = sse_end,
    .release = sse_release,
};
