/* Builds an h2o_req_t from fuzz text (see fake_req.h); only the fields the broker reads from a request. Also the
 * services both fakes share and the configuration they start from. */
#include <ctype.h>

#include "auth.h"
#include "config.h"
#include "fake_req.h"
#include "http.h"
#include "message.h"

static socklen_t no_peer(h2o_conn_t *conn, struct sockaddr *sa)
{
    (void)conn, (void)sa;
    return 0;
}

static const h2o_conn_callbacks_t conn_callbacks = {.get_peername = no_peer};
static h2o_conn_t conn = {.callbacks = &conn_callbacks};

void fake_req_init(h2o_req_t *req, const uint8_t *data, size_t size)
{
    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    req->conn = &conn;
    req->version = 0x101;
    req->method = h2o_iovec_init(H2O_STRLIT("GET"));
    req->input.scheme = &H2O_URL_SCHEME_HTTP; /* h2o always sets these; a Host line below replaces the authority */
    req->input.authority = h2o_iovec_init(H2O_STRLIT("127.0.0.1:8080"));
    size_t pos = 0;
    rt_str_t line = {"/", 1};
    fuzz_line(data, size, &pos, &line);
    req->path = h2o_iovec_init(line.base, line.len);
    const char *q = line.len ? memchr(line.base, '?', line.len) : NULL;
    req->query_at = q ? (size_t)(q - line.base) : SIZE_MAX;
    while (fuzz_line(data, size, &pos, &line)) {
        const char *colon = memchr(line.base, ':', line.len);
        if (colon == NULL || colon == line.base)
            continue;
        size_t nlen = (size_t)(colon - line.base);
        char *name = h2o_mem_alloc_pool(&req->pool, nlen); /* h2o keeps header names in lower case */
        for (size_t i = 0; i < nlen; i++)
            name[i] = (char)tolower((unsigned char)line.base[i]);
        const char *v = colon + 1, *end = line.base + line.len;
        while (v < end && *v == ' ')
            v++;
        if (nlen == 7 && memcmp(name, "upgrade", 7) == 0)
            req->upgrade = h2o_iovec_init(v, (size_t)(end - v)); /* h2o keeps Upgrade apart */
        else if (nlen == 4 && memcmp(name, "host", 4) == 0)
            req->input.authority = h2o_iovec_init(v, (size_t)(end - v));
        else
            h2o_add_header_by_str(&req->pool, &req->headers, name, nlen, 1, NULL, v, (size_t)(end - v));
    }
}

void fake_req_free(h2o_req_t *req) { h2o_mem_clear_pool(&req->pool); }

rt_str_t fake_cfg_string(const char *section, const char *name)
{
    (void)section, (void)name;
    return (rt_str_t){"", 0};
}

void fake_log(int level, const char *plugin, const char *fmt, ...) { (void)level, (void)plugin, (void)fmt; }

rt_str_t fake_req_method(rt_request_t *r)
{
    h2o_req_t *req = (h2o_req_t *)r;
    return (rt_str_t){req->method.base, req->method.len};
}
rt_str_t fake_req_path(rt_request_t *r) { return rt_req_path((h2o_req_t *)r); }
rt_str_t fake_req_header(rt_request_t *r, const char *name) { return rt_req_header((h2o_req_t *)r, name); }
int fake_req_query(rt_request_t *r, const char *name, size_t nth, rt_str_t *out)
{
    return rt_req_query((h2o_req_t *)r, name, nth, out);
}
int fake_req_topics(rt_request_t *r, rt_str_t *out, size_t max) { return rt_req_topics((h2o_req_t *)r, out, max); }
rt_str_t fake_req_since(rt_request_t *r) { return rt_req_since((h2o_req_t *)r); }

void fake_msg_view(rt_msg_t *m, rt_msg_view_t *out)
{
    *out = (rt_msg_view_t){m->id, m->topic, m->event, m->content_type, m->data, m->seq, m->flags};
}

void fuzz_configure(const char *const (*overrides)[2], size_t n)
{
    char err[512];
    rt_log_level = -1;
    rt_config_reset();
    FUZZ_ASSERT(rt_config_load(NULL, err, sizeof(err)) == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(rt_config_override(overrides[i][0], overrides[i][1], err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_auth_init(err, sizeof(err)) == 0);
    rt_config_freeze();
}
