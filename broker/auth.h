/* Who may subscribe and publish: anonymous patterns now, JWT claims later. */
#ifndef RT_AUTH_H
#define RT_AUTH_H

#include "rt.h"

int rt_auth_init(char *err, size_t errlen);
/* RT_OK, RT_EUNAUTHORIZED (no credentials that allow it) or RT_EFORBIDDEN. */
int rt_auth_can_subscribe(rt_request_t *req, rt_str_t pattern);
int rt_auth_can_publish(rt_request_t *req, rt_str_t topic);
/* Whether anonymous clients may do anything at all (for the open-listener warning). */
int rt_auth_anonymous_open(void);

#endif
