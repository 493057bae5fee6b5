/* The server API under /api/ (api.c), what it does on this node's workers (api_local.c) and across the NATS cluster
 * (api_cluster.c). */
#ifndef RT_API_H
#define RT_API_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "hub.h"
#include "rt.h"

/* Reads api.* (after the config is loaded); 0, or -1 with err. */
int rt_api_init(char *err, size_t errlen);
/* 1 when a key is configured (otherwise every /api/ path answers 404). */
int rt_api_enabled(void);
/* 1 when the request carries `Authorization: apikey <a configured key>`. */
int rt_api_key_ok(h2o_req_t *req);
/* Serves /api/...; api_listener: the request came on an api.listen listener. */
void rt_api_handle(h2o_req_t *req, rt_str_t path);
void rt_api_metrics(rt_buf_t *out);

/* ---------- a command run on every node (api_local.c runs this node's part) ---------- */
enum { RT_API_DISCONNECT = 1, RT_API_SUBSCRIBE, RT_API_UNSUBSCRIBE, RT_API_TOPICS, RT_API_TOPIC, RT_API_INFO, RT_API_FORGET };

typedef struct rt_api_cmd {
    int op;
    char user[129], client[RT_TOPIC_MAX + 1], topic[RT_TOPIC_MAX + 1], reason[256];
    int reconnect;
} rt_api_cmd_t;

typedef struct rt_api_count {
    char *topic;
    size_t n;
} rt_api_count_t;

/* One node's answer. */
typedef struct rt_api_result {
    char node[80];
    size_t count;          /* connections acted on (disconnect, subscribe, unsubscribe); subscribers (topic);
                            * retained messages dropped (forget) */
    rt_api_count_t *topics; /* RT_API_TOPICS: subscribed topics and patterns under the pattern, with subscribers */
    size_t ntopics;
    rt_buf_t info;         /* RT_API_INFO: the node's JSON object */
} rt_api_result_t;

void rt_api_result_free(rt_api_result_t *r);
/* Runs cmd on this node's workers, then done(r, arg) on worker `origin` (NULL: worker 0). */
void rt_api_local_run(const rt_api_cmd_t *cmd, rt_worker_t *origin, void (*done)(rt_api_result_t *r, void *arg), void *arg);

/* Every node's answer (this one's first) and the nodes that did not answer in time; results and missing are
 * the callee's, valid during the call. */
typedef void (*rt_api_cluster_cb)(void *arg, rt_api_result_t *results, size_t n, const char *const *missing,
                                  size_t nmissing);
/* On the memory bus: this node only. On NATS: every node that answers within api.timeout. Worker thread. */
void rt_api_cluster_run(const rt_api_cmd_t *cmd, rt_api_cluster_cb cb, void *arg);
int rt_api_cluster_start(char *err, size_t errlen); /* after the bus started */
void rt_api_cluster_stop(void);

/* ---------- the hooks of subscribers ---------- */
void rt_api_accept_server_topics(rt_sub_t *sub);
int rt_api_disconnect_info(rt_sub_t *sub, rt_str_t *json);
void rt_api_sub_gone(rt_sub_t *sub); /* destroy(): frees what the API keeps on it */
uint64_t rt_api_started_ms(void);

#endif
