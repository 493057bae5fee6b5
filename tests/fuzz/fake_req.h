/* A real h2o_req_t built from fuzz text, so that broker/http.c and auth.c parse it as they would a request:
 * the first line is the path with its query, each next line "Name: value" a header. */
#ifndef RT_FAKE_REQ_H
#define RT_FAKE_REQ_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

/* Fills req (its pool is initialized here; free with fake_req_free). Slices point into data. */
void fake_req_init(h2o_req_t *req, const uint8_t *data, size_t size);
void fake_req_free(h2o_req_t *req);

#endif
