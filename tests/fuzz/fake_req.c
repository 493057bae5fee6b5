/* Builds an h2o_req_t from fuzz text (see fake_req.h); only the fields the broker reads from a request. */
#include <ctype.h>

#include "fuzz.h"
#include "fake_req.h"

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
