/* Open TCP connections and limits.max_connections (see conns.c). */
#ifndef RT_CONNS_H
#define RT_CONNS_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "rt.h"

/* A socket just accepted: counts it; 1 to hand it to h2o (maybe only to be refused, below), 0 when it was closed. */
int rt_conns_admit(h2o_socket_t *sock);
/* 1 when the request came on a connection past limits.max_connections: answered 503 too_many_connections. */
int rt_conns_refuse(h2o_req_t *req);
/* An accept failed: when for lack of descriptors, stop that listener for a moment instead of spinning on it. */
void rt_conns_accept_failed(h2o_socket_t *listener, h2o_socket_cb on_accept, int err);
/* For /metrics. */
long rt_conns_open(void);
unsigned long rt_conns_refused_total(void);

#endif
