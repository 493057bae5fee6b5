/* Proxy calls to the application backend (proxy.*): it decides who connects, and with which identity. */
#ifndef RT_PROXY_H
#define RT_PROXY_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "jwtauth.h"
#include "rt.h"

/* Main thread, after the configuration is loaded: 0, or -1 with err naming the key. */
int rt_proxy_init(char *err, size_t errlen);
/* Whether proxy.connect.url is set. */
int rt_proxy_connect_enabled(void);
/* Worker thread: asks the backend whether this subscribe request may connect, and then hands it to tp->start
 * (allowed) or answers it with the refusal. The request waits meanwhile; nothing blocks. */
void rt_proxy_connect(h2o_req_t *req, const rt_transport_t *tp);
/* The identity a connect answer granted, for the subscriber that the transport opens during tp->start: taken (and
 * reset to NULL) by rt_sub_open. */
extern __thread rt_ident_t *rt_proxy_grant;
/* Or the refusal (RT_EUNAUTHORIZED, RT_EFORBIDDEN, RT_ERATELIMIT) a WebSocket gets after its upgrade, so that a
 * browser can read it: rt_sub_open makes it the subscriber's credentials error (and resets it to 0). */
extern __thread int rt_proxy_refusal;
void rt_proxy_metrics(rt_buf_t *out);

#endif
