/*
 * Server API commands across the cluster. On the memory bus a command runs on this node only. On the NATS bus
 * (see the second half) every node runs it and answers on core NATS, over a connection of the API's own.
 */
#include <stdio.h>
#include <stdlib.h>

#include "api.h"

typedef struct local_call {
    rt_api_cluster_cb cb;
    void *arg;
} local_call_t;

static void on_local_done(rt_api_result_t *r, void *arg)
{
    local_call_t *l = arg;
    l->cb(l->arg, r, 1, NULL, 0);
    free(l);
}

void rt_api_cluster_run(const rt_api_cmd_t *cmd, rt_api_cluster_cb cb, void *arg)
{
    local_call_t *l = rt_malloc(sizeof(*l));
    l->cb = cb;
    l->arg = arg;
    rt_api_local_run(cmd, rt_current_worker, on_local_done, l);
}

int rt_api_cluster_start(char *err, size_t errlen)
{
    (void)err, (void)errlen;
    return 0;
}

void rt_api_cluster_stop(void) {}
