/*
 * The limits the hot paths read (rt_lim), derived from a configuration table: at start (rt_config_freeze) and
 * again on SIGHUP for those that may change while running; limits.max_connections 0 resolved from the open
 * file limit. Reads values only through a table accessor; owns no configuration state.
 */
#include <sys/resource.h>
#include <unistd.h>

#include "config.h"

rt_limits_t rt_lim;

/* limits.max_connections 0: what the open file limit allows, keeping descriptors for the (at most 256)
 * connections being refused, 64 for NATS and files, and 6 per worker (its epoll, wake-up pipe and copies
 * of the listeners). */
size_t rt_config_workers(int64_t configured)
{
    if (configured > 0)
        return (size_t)configured;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (size_t)n : 1;
}

static size_t auto_max_connections(size_t workers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 100000000)
        return 100000000;
    size_t n = (size_t)rl.rlim_cur, reserve = 256 + 64 + 6 * workers;
    return n - (n / 4 < reserve ? n / 4 : reserve);
}

static int64_t int_of(const rt_cfg_value_t *(*get)(const char *), const char *path)
{
    const rt_cfg_value_t *v = get(path);
    return v ? v->i : 0;
}

void rt_config_set_limits(const rt_cfg_value_t *(*get)(const char *))
{
    int64_t mc = int_of(get, "limits.max_connections");
    rt_lim.max_connections = mc > 0 ? (size_t)mc : auto_max_connections(rt_config_workers(int_of(get, "workers")));
    rt_lim.max_queue_bytes = (size_t)int_of(get, "limits.max_queue_bytes");
    rt_lim.connections_per_ip = (double)int_of(get, "limits.connections_per_ip");
    rt_lim.publish_per_connection = (double)int_of(get, "limits.publish_per_connection");
    rt_lim.publish_per_subject = (double)int_of(get, "limits.publish_per_subject");
}
