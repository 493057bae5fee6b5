/* Operations endpoints (/healthz, /readyz, /metrics) and the counters behind /metrics. */
#ifndef RT_OPS_H
#define RT_OPS_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "rt.h"

void rt_metrics_register_transport(const rt_transport_t *tp);
void rt_metrics_conn(const rt_transport_t *tp, int delta);
void rt_metrics_delivered(const rt_transport_t *tp, size_t messages, size_t bytes);
void rt_metrics_bytes_out(size_t bytes);
void rt_metrics_published(int ok);
void rt_metrics_publish_paced(void);
void rt_metrics_slow(void);
void rt_metrics_queue_held(size_t bytes); /* what one subscriber holds queued now: the peak is kept */
void rt_metrics_replay(int gap);
void rt_metrics_auth_failure(void);
void rt_metrics_http_error(int status);
void rt_metrics_rate_limited(const char *kind); /* "publish" or "connect" */
void rt_metrics_ephemeral(void);

/* {"websocket":N,...}: open subscriber connections by transport. */
void rt_metrics_conns_json(rt_buf_t *b);

/* Serves /healthz, /readyz and /metrics; returns 0 when it answered, -1 when the path is not one of them. */
int rt_ops_handle(h2o_req_t *req, rt_str_t path);

#endif
