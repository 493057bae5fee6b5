/* HTTP helpers over h2o requests: answers with the API's JSON errors, query parsing, topics and resume ids. */
#ifndef RT_HTTP_H
#define RT_HTTP_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "rt.h"

void rt_http_respond(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len);
/* The same with a body built in b: copied into the request's pool, and b freed. */
void rt_http_respond_buf(h2o_req_t *req, int status, const char *content_type, rt_buf_t *b);
/* {"error":code,"message":message} with the status of the RT_E* code; logs the refusal. */
void rt_http_error(h2o_req_t *req, int err, const char *message);
void rt_http_error_status(h2o_req_t *req, int status, const char *code, const char *message);
void rt_http_add_common_headers(h2o_req_t *req);
/* Registers, after every other handler of pc, the JSON 404 for paths nothing serves. */
void rt_http_register_not_found(h2o_pathconf_t *pc);

rt_str_t rt_req_header(h2o_req_t *req, const char *name);
/* nth value of a query parameter, percent-decoded into the request's pool. */
int rt_req_query(h2o_req_t *req, const char *name, size_t nth, rt_str_t *out);
/* Path without the query, percent-decoded. */
rt_str_t rt_req_path(h2o_req_t *req);
/* Topics of a subscribe request: the path tail after "/sub/" (or after an explicit path and '/'), else topic= values. */
int rt_req_topics(h2o_req_t *req, rt_str_t *out, size_t max);
rt_str_t rt_req_since(h2o_req_t *req);

#endif
