/*
 * The server API's core keys (api.*) and limits.connections_per_user, kept apart from config.c's table;
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
};
const size_t rt_cfg_napi_keys = sizeof(rt_cfg_api_keys) / sizeof(rt_cfg_api_keys[0]);
