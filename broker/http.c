/*
 * Request-side helpers shared by the core handlers and exposed to plugins: percent-
 * decoding of path and query (into the request's pool, bounded by the request size),
 * the topics and resume id of a subscribe request, and the API's JSON error answers.
 */
#include <stdio.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "ops.h"
#include "text.h"
#include "topic.h"

/* The standard reason phrases (RFC 9110, 6585) for every status the broker, its plugins or h2o may answer. */
static const char *reason_of(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 200 ? "Informational" : status < 300 ? "Success" : status < 400 ? "Redirection"
                    : status < 500 ? "Client Error" : "Server Error";
    }
}

/* The last handler, after the static files: a path nothing serves gets the API's JSON refusal, like every other. */
static int not_found(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    rt_http_error_status(req, 404, "not_found",
                         "nothing here: the API is under /pub, /sub, /ws, /sse, /poll, /history, /presence; "
                         "static files come from web.root");
    return 0;
}

void rt_http_register_not_found(h2o_pathconf_t *pc) { h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = not_found; }

void rt_http_add_common_headers(h2o_req_t *req) { rt_cors_headers(req); }

void rt_http_respond(h2o_req_t *req, int status, const char *content_type, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    if (content_type)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    rt_http_add_common_headers(req);
    h2o_send_inline(req, body, len);
}

void rt_http_respond_buf(h2o_req_t *req, int status, const char *content_type, rt_buf_t *b)
{
    char *body = h2o_mem_alloc_pool(&req->pool, b->len ? b->len : 1);
    if (b->len)
        memcpy(body, b->base, b->len);
    size_t len = b->len;
    rt_buf_free(b);
    rt_http_respond(req, status, content_type, body, len);
}

void rt_http_error_status(h2o_req_t *req, int status, const char *code, const char *message)
{
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"error\":");
    rt_json_append_string(&b, rt_cstr(code));
    rt_buf_appendc(&b, ",\"message\":");
    rt_json_append_string(&b, rt_cstr(message));
    rt_buf_appendc(&b, "}\n");
    /* the query is left out: it may hold a token */
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    rt_log(status >= 500 ? RT_LOG_WARN : RT_LOG_INFO, "%.*s %.*s%s -> %d %s: %s", (int)req->method.len, req->method.base,
           (int)(plen > 200 ? 200 : plen), req->path.base, plen < req->path.len ? "?…" : "", status, code, message);
    rt_metrics_http_error(status);
    if (status == 429 || status == 503)
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, H2O_STRLIT("1"), 1);
    rt_http_respond_buf(req, status, "application/json", &b);
}

void rt_http_error(h2o_req_t *req, int err, const char *message)
{
    char buf[400];
    rt_ident_t *id = NULL;
    const char *why = NULL;
    if (err == RT_EUNAUTHORIZED && (rt_auth_verify(req, &id, &why) != RT_OK || why != NULL)) {
        snprintf(buf, sizeof(buf), "the token was refused: %s", why);
        message = buf;
    }
    rt_ident_free(id);
    rt_http_error_status(req, rt_err_status(err), rt_strerror(err), message);
}

rt_str_t rt_req_header(h2o_req_t *req, const char *name)
{
    if (strcmp(name, "upgrade") == 0) /* h2o keeps it apart (only with `Connection: upgrade`, HTTP/1.1) */
        return req->upgrade.base ? rt_str(req->upgrade.base, req->upgrade.len) : rt_str(NULL, 0);
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    if (i < 0)
        return rt_str(NULL, 0);
    return rt_str(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static rt_str_t decode(h2o_req_t *req, const char *s, size_t len, int plus_is_space)
{
    char *out = h2o_mem_alloc_pool(&req->pool, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[o++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return rt_str(out, o);
}

rt_str_t rt_req_path(h2o_req_t *req)
{
    size_t end = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    return decode(req, req->path.base, end, 0);
}

int rt_req_query(h2o_req_t *req, const char *name, size_t nth, rt_str_t *out)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name), seen = 0;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *kend = eq ? eq : stop;
        if ((size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            if (seen++ == nth) {
                *out = eq ? decode(req, eq + 1, (size_t)(stop - eq - 1), 1) : rt_str("", 0);
                return 1;
            }
        }
        p = stop + 1;
    }
    return 0;
}

int rt_req_topics(h2o_req_t *req, rt_str_t *out, size_t max)
{
    rt_str_t path = rt_req_path(req);
    size_t n = 0;
    const char *slash = path.len > 1 ? memchr(path.base + 1, '/', path.len - 1) : NULL;
    if (slash != NULL && slash + 1 < path.base + path.len) { /* "/sub/" with nothing after: topic= values only */
        rt_str_t t = rt_str(slash + 1, (size_t)(path.base + path.len - slash - 1));
        if (rt_topic_check(t, 1, NULL) != RT_OK)
            return RT_ETOPIC;
        if (max < 1)
            return RT_ETOOMANY;
        out[n++] = t;
    }
    rt_str_t t;
    for (size_t i = 0; rt_req_query(req, "topic", i, &t); i++) {
        if (rt_topic_check(t, 1, NULL) != RT_OK)
            return RT_ETOPIC;
        if (n == max)
            return RT_ETOOMANY;
        out[n++] = t;
    }
    return n == 0 ? RT_ETOPIC : (int)n;
}

rt_str_t rt_req_since(h2o_req_t *req)
{
    static const char *const names[] = {"lastEventId", "since", "cursor"};
    rt_str_t v = rt_req_header(req, "last-event-id");
    if (v.len)
        return v;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (rt_req_query(req, names[i], 0, &v) && v.len)
            return v;
    return rt_str(NULL, 0);
}
