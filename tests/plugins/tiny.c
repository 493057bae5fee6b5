/*
 * A tiny transport plugin for the loader tests (tests/integration/test_plugins_loader.mjs).
 * It answers every request it takes with its `greeting` repeated `repeat` times, claims
 * /sub/... when Accept has application/x-tiny (priority 50), and serves TINY_PATH.
 * The other files here include it with a macro changed to make a broken variant.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rtbroker/plugin.h"

#ifndef TINY_NAME
#define TINY_NAME "tiny"
#endif
#ifndef TINY_PATH
#define TINY_PATH "/tiny"
#endif
#ifndef TINY_ABI
#define TINY_ABI RT_PLUGIN_ABI_VERSION
#endif
#ifndef TINY_SLOTS
#define TINY_SLOTS 0
#endif
#ifndef TINY_INIT_RESULT
#define TINY_INIT_RESULT 0
#endif

static const rt_services_t *svc;
extern const rt_transport_t rt_transport_v1;

static int t_init(const rt_services_t *services)
{
    svc = services;
    if (TINY_INIT_RESULT != 0)
        svc->log(0, TINY_NAME, "refusing to start (a test plugin built to fail)");
    return TINY_INIT_RESULT;
}

static int t_claims(rt_request_t *req)
{
    rt_str_t accept = svc->req_header(req, "accept");
    static const char want[] = "application/x-tiny";
    for (size_t i = 0; i + sizeof(want) - 1 <= accept.len; i++)
        if (strncasecmp(accept.base + i, want, sizeof(want) - 1) == 0)
            return 50;
    return 0;
}

static void t_start(rt_request_t *req)
{
    rt_str_t greeting = svc->cfg_string(TINY_NAME, "greeting");
    int64_t repeat = svc->cfg_int(TINY_NAME, "repeat");
    rt_str_t path = svc->req_path(req);
    char body[512];
    size_t len = 0;
    for (int64_t i = 0; i < repeat && len + greeting.len + 1 < 200; i++)
        len += (size_t)snprintf(body + len, sizeof(body) - len, "%s%.*s", i ? " " : "", (int)greeting.len, greeting.base);
    len += (size_t)snprintf(body + len, sizeof(body) - len, " from " TINY_NAME " at %.*s\n", (int)(path.len > 200 ? 200 : path.len),
                            path.base);
    svc->respond(req, 200, "text/plain", body, len);
}

#ifndef TINY_NO_DELIVER
static void t_deliver(rt_sub_t *sub, rt_msg_t *msg) { (void)sub, (void)msg; }
#endif
static void t_gap(rt_sub_t *sub, rt_str_t from) { (void)sub, (void)from; }
static void t_end(rt_sub_t *sub, rt_end_reason_t why) { (void)why, svc->sub_close(sub); }
static void t_release(rt_sub_t *sub) { (void)sub; }

static const char *const t_paths[] = {TINY_PATH, NULL};
static const rt_cfg_key_t t_config[] = {
    {"greeting", RT_CFG_STRING, "hello", 0, 0},
    {"repeat", RT_CFG_INT, "1", 1, 5},
    {NULL, 0, NULL, 0, 0},
};

const rt_transport_t rt_transport_v1 = {
    .abi_version = TINY_ABI,
    .name = TINY_NAME,
    .paths = t_paths,
    .config = t_config,
    .cache_slots = TINY_SLOTS,
    .init = t_init,
    .claims = t_claims,
    .start = t_start,
#ifndef TINY_NO_DELIVER
    .deliver = t_deliver,
#endif
    .gap = t_gap,
    .end = t_end,
    .release = t_release,
};
