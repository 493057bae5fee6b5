/* The read-on-demand APIs: GET /history/{topic} and GET /presence/{topic}. */
#ifndef RT_HISTORY_API_H
#define RT_HISTORY_API_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

void rt_history_handle(h2o_req_t *req);
void rt_presence_handle(h2o_req_t *req);

#endif
