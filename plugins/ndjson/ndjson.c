/*
 * NDJSON streaming transport, the example of a third-party plugin: `Accept:
 * application/x-ndjson` on /sub/... (or /ndjson?topic=...) streams one JSON envelope
 * per line, for fetch() clients that need request headers EventSource cannot send
 * (Authorization). Resume with Last-Event-ID or ?since=; gaps, heartbeats and the end
 * are lines with a "type" (the first line is {"type":"ok"}). Built only against include/rtbroker/plugin.h
 * (see PLUGINS.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rtbroker/plugin.h"

static const rt_services_t *svc;
static uint64_t heartbeat_ms;
static size_t max_topics;
extern const rt_transport_t rt_transport_v1;

static int nd_init(const rt_services_t *services)
{
    svc = services;
    heartbeat_ms = (uint64_t)svc->cfg_int("ndjson", "heartbeat");
    max_topics = (size_t)svc->cfg_int("limits", "max_topics");
    return 0;
}

static int nd_claims(rt_request_t *req)
{
    rt_str_t accept = svc->req_header(req, "accept");
    static const char want[] = "application/x-ndjson";
    for (size_t i = 0; i + sizeof(want) - 1 <= accept.len; i++)
        if (strncasecmp(accept.base + i, want, sizeof(want) - 1) == 0)
            return 20;
    return 0;
}

/* The envelope and a newline, once per message, shared by every ndjson subscriber. */
static rt_str_t encode(rt_msg_t *msg, int slot)
{
    (void)slot;
    rt_str_t env = svc->msg_envelope(msg);
    char *line = malloc(env.len + 1);
    if (line == NULL)
        abort();
    memcpy(line, env.base, env.len);
    line[env.len] = '\n';
    return (rt_str_t){line, env.len + 1};
}

static void line(rt_sub_t *sub, const char *text)
{
    svc->write_copy(sub, text, strlen(text));
}

static void on_heartbeat(rt_sub_t *sub)
{
    line(sub, "{\"type\":\"ping\"}\n");
    svc->sub_timer(sub, 0, heartbeat_ms, on_heartbeat);
}

static void nd_start(rt_request_t *req)
{
    rt_str_t topics[256];
    int n = svc->req_topics(req, topics, max_topics < 256 ? max_topics : 256);
    if (n < 0) {
        svc->respond_error(req, n, NULL);
        return;
    }
    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, 0);
    line(sub, "{\"type\":\"ok\"}\n"); /* first, so the client knows at once that it is subscribed */
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
    static const char *const headers[] = {"content-type", "application/x-ndjson", "cache-control", "no-cache",
                                          "x-accel-buffering", "no", NULL};
    svc->stream_start(sub, 200, headers);
    svc->sub_timer(sub, 0, rt_heartbeat_first_ms(heartbeat_ms, sub), on_heartbeat);
}

static void nd_deliver(rt_sub_t *sub, rt_msg_t *msg)
{
    rt_str_t bytes = svc->msg_encoded(msg, &rt_transport_v1, 0, encode);
    if (svc->write_ref(sub, bytes, msg) == RT_OK)
        svc->count_delivered(&rt_transport_v1, 1, bytes.len);
}

static void nd_gap(rt_sub_t *sub, rt_str_t from)
{
    char buf[128];
    snprintf(buf, sizeof(buf), "{\"type\":\"gap\",\"from\":\"%.*s\"}\n", (int)(from.len > 64 ? 64 : from.len), from.base);
    line(sub, buf);
}

static void nd_end(rt_sub_t *sub, rt_end_reason_t why)
{
    if (why == RT_END_SHUTDOWN)
        line(sub, "{\"type\":\"shutdown\"}\n");
    else if (why == RT_END_EXPIRED)
        line(sub, "{\"type\":\"expired\"}\n");
    svc->sub_close(sub);
}

static void nd_release(rt_sub_t *sub) { (void)sub; }

static const char *const nd_paths[] = {"/ndjson", NULL};
static const rt_cfg_key_t nd_config[] = {
    {"heartbeat", RT_CFG_DURATION, "15s", 100, 3600000},
    {NULL, 0, NULL, 0, 0},
};

const rt_transport_t rt_transport_v1 = {
    .abi_version = RT_PLUGIN_ABI_VERSION,
    .name = "ndjson",
    .paths = nd_paths,
    .config = nd_config,
    .cache_slots = 1,
    .init = nd_init,
    .claims = nd_claims,
    .start = nd_start,
    .deliver = nd_deliver,
    .gap = nd_gap,
    .end = nd_end,
    .release = nd_release,
};
