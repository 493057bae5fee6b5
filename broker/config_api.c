/*
 * The server API's core keys (api.*), limits.connections_per_user and the webhooks (webhook_config.c checks
 * them), kept apart from config.c's table;
 * config.c declares them right after its own. The `topics:` list of namespaces is parsed by namespace.c.
 */
#include "config.h"

#define K(p, t, d, mn, mx) {.path = (p), .type = (t), .default_value = (d), .min = (mn), .max = (mx)}
const rt_cfg_value_t rt_cfg_api_keys[] = {
    K("api.keys", RT_CFG_LIST, "", 0, 0),
    K("api.listen", RT_CFG_LIST, "", 0, 0),
    K("api.max_topics_per_publish", RT_CFG_INT, "100", 1, 10000),
    K("api.max_body_bytes", RT_CFG_SIZE, "1MiB", 1024, 64LL << 20),
    K("api.timeout", RT_CFG_DURATION, "2s", 50, 60000),
    K("limits.connections_per_user", RT_CFG_INT, "0", 0, 1000000),
    {.path = "webhooks.endpoints", .type = RT_CFG_MAPS, .default_value = "",
     .fields = "url,events,topics,secret,max_attempts"},
    K("webhooks.vacated_delay", RT_CFG_DURATION, "2s", 0, 3600LL * 1000),
    K("webhooks.timeout", RT_CFG_DURATION, "5s", 10, 60000),
    K("webhooks.retry_delay", RT_CFG_DURATION, "1s", 1, 3600LL * 1000),
    K("webhooks.retry_max_delay", RT_CFG_DURATION, "1m", 1, 86400LL * 1000),
    K("webhooks.max_queue", RT_CFG_INT, "10000", 1, 10000000),
    K("webhooks.max_in_flight", RT_CFG_INT, "32", 1, 10000),
    K("webhooks.tls_ca", RT_CFG_STRING, "", 0, 0),
};
const size_t rt_cfg_napi_keys = sizeof(rt_cfg_api_keys) / sizeof(rt_cfg_api_keys[0]);
