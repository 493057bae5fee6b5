/* Who may subscribe and publish: token sources, anonymous patterns, JWT permissions, Origin and CORS. */
#ifndef RT_AUTH_H
#define RT_AUTH_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "jwtauth.h"
#include "rt.h"

int rt_auth_init(char *err, size_t errlen);
/* SIGHUP, between rt_config_reload_begin and _end: check the new file's http.allowed_origins, then use them. */
int rt_auth_reload_check(char *err, size_t errlen);
void rt_auth_reload_apply(void);
/* The request's token (Authorization: Bearer, token= query, a WebSocket subprotocol entry bearer.<jwt>, else the
 * auth.cookie cookie), checked: RT_OK with *id (NULL when there is no token), or RT_EUNAUTHORIZED with *why.
 * A cookie on a request another site's page made (its Origin neither this server's own nor named in
 * http.allowed_origins) is ignored: RT_OK, *id NULL and *why saying so. rt_auth_identify also logs. */
int rt_auth_verify(h2o_req_t *req, rt_ident_t **id, const char **why);
int rt_auth_identify(h2o_req_t *req, rt_ident_t **id, const char **why);
/* The token rt_auth_verify would check (an ignored cookie's is not), unchecked; empty when none. */
rt_str_t rt_auth_token(h2o_req_t *req);
/* RT_OK, RT_EUNAUTHORIZED (no token, and anonymous access does not cover it) or RT_EFORBIDDEN. */
int rt_auth_allows(const rt_ident_t *id, rt_str_t pattern, int publish);
/* Whether anonymous clients may do anything at all / subscribe to anything. */
int rt_auth_anonymous_open(void);
int rt_auth_anonymous_subscribe(void);

/* The client's address as text ("?" when unknown). */
void rt_peer_ip(h2o_req_t *req, char *out, size_t outlen);
void rt_sock_peer_ip(h2o_socket_t *sock, char *out, size_t outlen); /* the same for an upgraded connection */
/* Origin policy (http.allowed_origins): 1 when the request's Origin (if any) is allowed. */
int rt_origin_allowed(h2o_req_t *req);
/* CORS response headers for an allowed Origin. */
void rt_cors_headers(h2o_req_t *req);
/* Answers a CORS preflight (OPTIONS). */
void rt_cors_preflight(h2o_req_t *req);

#endif
