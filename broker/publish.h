/* POST /pub/{topic}. */
#ifndef RT_PUBLISH_H
#define RT_PUBLISH_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "jwtauth.h"
#include "rt.h"

void rt_publish_handle(h2o_req_t *req, rt_str_t path);
/* Checks an event name ([A-Za-z0-9_.-]{1,64}). */
int rt_event_valid(rt_str_t ev);
/* The checks every publish passes before the bus sees it; RT_OK or an error with *why. server: the request carries
 * an API key (any topic, namespaces with `publish: server` included). */
int rt_publish_check(const rt_ident_t *who, rt_str_t topic, rt_str_t event, int has_event, rt_str_t idem, size_t len,
                     const char **why, int server);
/* Publish for a subscriber's connection (rt_services_t.publish). */
int rt_publish_from_sub(rt_sub_t *sub, const rt_pub_t *pub, const char **why,
                        void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg), void *arg);

#endif
