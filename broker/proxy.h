/* Proxy calls to the application backend (proxy.*): it decides who connects, subscribes and publishes. */
#ifndef RT_PROXY_H
#define RT_PROXY_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "jwtauth.h"
#include "rt.h"

enum { RT_PROXY_CONNECT, RT_PROXY_SUBSCRIBE, RT_PROXY_PUBLISH, RT_PROXY_REFRESH, RT_PROXY_NEVENTS };

/* Main thread, after the configuration is loaded: 0, or -1 with err naming the key. */
int rt_proxy_init(char *err, size_t errlen);
/* Whether proxy.<event>.url is set. */
int rt_proxy_enabled(int event);
void rt_proxy_metrics(rt_buf_t *out);

/* What the backend decided, with proxy.failure_policy applied. */
typedef struct rt_proxy_verdict {
    int err;            /* RT_OK, or the refusal: RT_EUNAUTHORIZED, RT_EFORBIDDEN, RT_ERATELIMIT, RT_EUNAVAILABLE */
    char reason[256];   /* the refusal's message */
    rt_ident_t *grant;  /* connect: the identity granted, or NULL (the receiver takes it) */
    char *data;         /* publish: the replacement payload (malloc'd; the receiver takes it), or NULL */
    size_t data_len;
    int64_t expire_at_ms; /* refresh: the new expiry (wall clock), 0 when the answer gave none */
} rt_proxy_verdict_t;
typedef struct rt_proxy_call rt_proxy_call_t;
typedef void (*rt_proxy_done_t)(void *arg, rt_proxy_verdict_t *v);

/* The start of a call's JSON (the caller appends its own members, then "}"): event, client, transport, ip, user,
 * claims (of the request's token) and the forwarded headers. req may be NULL (an upgraded connection: sock gives
 * the address); who is the connection's identity when it has one, else the request's token is described. */
void rt_proxy_describe(rt_buf_t *b, int event, rt_str_t client, const char *transport, h2o_req_t *req,
                       h2o_socket_t *sock, const rt_ident_t *who);
/* Worker thread: POSTs body to proxy.<event>.url; done runs later on this thread with the verdict, unless
 * cancelled. NULL when the call cannot start (proxy.max_in_flight): *now holds the verdict (failure policy). */
rt_proxy_call_t *rt_proxy_ask(int event, rt_str_t body, rt_proxy_done_t done, void *arg, rt_proxy_verdict_t *now);
void rt_proxy_cancel(rt_proxy_call_t *c);

/* --- the flows (proxy_flow.c) --- */
/* Whether a subscribe request must wait for the backend before its transport sees it. */
int rt_proxy_gates_requests(void);
/* Worker thread: asks the backend about this subscribe request (connect, then each topic in the request), then hands
 * it to tp->start (allowed) or answers it with the refusal. The request waits meanwhile; nothing blocks. */
void rt_proxy_request(h2o_req_t *req, const rt_transport_t *tp);
/* rt_services_t.subscribe_ask: 0 when no subscribe proxy is configured (subscribe now), 1 when done follows. */
int rt_proxy_subscribe_ask(rt_sub_t *sub, rt_str_t topic, void (*done)(rt_sub_t *sub, int err, const char *why, void *arg),
                           void *arg);
/* For the expiry wheel (hub_token.c): a connection whose connect-proxy identity expired is asked about again
 * (proxy.refresh) instead of ending; it goes back on the wheel with the answer. 1 when that is under way. */
int rt_proxy_refresh(rt_sub_t *sub);
/* For rt_sub_subscribe: whether this subscription was approved by the subscribe proxy (or none is configured). */
int rt_proxy_subscribe_approved(void);
/* A publish's continuation: err RT_OK (publish now, with *data instead of the payload when the backend replaced it),
 * the refusal with why, or RT_ECLOSED (the connection ended meanwhile). Not called when POST /pub's client went
 * away first: arg is freed then. */
typedef void (*rt_proxy_pub_go_t)(rt_sub_t *sub, h2o_req_t *req, int err, const char *why, const rt_str_t *data,
                                  void *arg);
/* A publish from a connection (sub) or from POST /pub (req): 0 when no publish proxy is configured (publish now),
 * 1 when go follows (maybe before this returns). arg must be malloc'd (or NULL). */
int rt_proxy_publish(rt_sub_t *sub, h2o_req_t *req, rt_str_t topic, rt_str_t data, rt_str_t ctype, rt_proxy_pub_go_t go,
                     void *arg);

/* For rt_sub_open: the connect proxy's verdict on the request being started (tp->start), when it asked: 1 when it
 * set sub's identity (the one granted) or its credentials error (a WebSocket's refusal after its upgrade), else 0. */
int rt_proxy_take_verdict(rt_sub_t *sub);
/* tp->start with a verdict handed to the subscriber it opens: err (a refusal the transport tells its client) or the
 * identity granted (taken; NULL: the request's own credentials); approve: its subscribes count as the backend's yes. */
void rt_proxy_start(h2o_req_t *req, const rt_transport_t *tp, int err, rt_ident_t *grant, int approve);

/* --- Socket.IO sessions (proxy_sio.c): a polling session spans many requests; connect is asked once for it --- */
#define RT_PROXY_SID_MAX 64
/* A request of an Engine.IO session (sid= on the socketio transport): 1 when handled (its session's verdict is
 * known: started with it; or another request of the session is asking: this one waits for that answer), 0 when
 * this request must ask (a pending entry now waits for rt_proxy_sio_keep or _forget), -1 when it must ask and the
 * answer is not kept (the table is full). */
int rt_proxy_sio_lookup(h2o_req_t *req, const rt_transport_t *tp, rt_str_t sid);
void rt_proxy_sio_keep(const char *sid, const rt_proxy_verdict_t *v, const rt_ident_t *grant);
void rt_proxy_sio_forget(const char *sid);
/* Whether req is a polling GET of a session: it re-subscribes that session's topics, each approved when it was
 * first subscribed. */
int rt_proxy_sio_poll(h2o_req_t *req);

#endif
