/* POST /pub/{topic}. */
#ifndef RT_PUBLISH_H
#define RT_PUBLISH_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "rt.h"

void rt_publish_handle(h2o_req_t *req, rt_str_t path);
/* Checks an event name ([A-Za-z0-9_.-]{1,64}). */
int rt_event_valid(rt_str_t ev);

#endif
