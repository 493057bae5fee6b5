/* A real h2o_req_t built from fuzz text, so that broker/http.c and auth.c parse it as they would a request:
 * the first line is the path with its query, each next line "Name: value" a header. */
#ifndef RT_FAKE_REQ_H
#define RT_FAKE_REQ_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "fuzz.h"

/* Fills req (its pool is initialized here; free with fake_req_free). Slices point into data. */
void fake_req_init(h2o_req_t *req, const uint8_t *data, size_t size);
void fake_req_free(h2o_req_t *req);

/* What both fake service tables (fake_svc.c, fake_stream.c) take from here: a request read by broker/http.c,
 * empty plugin strings, no log, message views. Requests are the h2o_req_t of fake_req_init. */
rt_str_t fake_cfg_string(const char *section, const char *name);
void fake_log(int level, const char *plugin, const char *fmt, ...);
rt_str_t fake_req_method(rt_request_t *r);
rt_str_t fake_req_path(rt_request_t *r);
rt_str_t fake_req_header(rt_request_t *r, const char *name);
int fake_req_query(rt_request_t *r, const char *name, size_t nth, rt_str_t *out);
int fake_req_topics(rt_request_t *r, rt_str_t *out, size_t max);
rt_str_t fake_req_since(rt_request_t *r);
void fake_msg_view(rt_msg_t *m, rt_msg_view_t *out);
#define FAKE_REQ_SERVICES                                                                                              \
    .cfg_string = fake_cfg_string, .log = fake_log, .req_method = fake_req_method, .req_path = fake_req_path,         \
    .req_header = fake_req_header, .req_query = fake_req_query, .req_topics = fake_req_topics,                        \
    .req_since = fake_req_since, .msg_view = fake_msg_view, .msg_unref = rt_msg_unref, .msg_envelope = rt_msg_envelope, \
    .utf8_valid = rt_utf8_valid, .json_object = rt_json_object, .json_unescape = rt_json_unescape,                    \
    .strerror = rt_strerror

/* The configuration the fakes start from: the defaults, these overrides (name, value), then auth.c's set-up. */
void fuzz_configure(const char *const (*overrides)[2], size_t n);

#endif
