/*
 * The backend hooks' HTTP client: POSTs over HTTP/1.1 (https for webhooks, the peer verified) with h2o's http1client
 * on the worker's own event loop, so a
 * slow backend never blocks a worker. Each worker keeps its own keep-alive socket pool per target; callers bound
 * how many calls run at once. Owns nothing else: what a call means is the caller's business (proxy.c).
 */
#include "httpclient.h"

#include <stdlib.h>

struct rt_httpc_call {
    h2o_http1client_t *client; /* NULL once h2o is done with it */
    h2o_timeout_entry_t deadline;
    rt_buf_t out, in;
    h2o_iovec_t iov;
    int status;
    int starting;          /* inside rt_httpc_post: an early failure is reported on the next loop turn */
    const char *err;       /* that failure */
    rt_worker_t *w;
    rt_httpc_done_t done;
    void *arg;
};

typedef struct worker_pools {
    h2o_socketpool_t pools[RT_HTTPC_MAX_TARGETS];
    int ready[RT_HTTPC_MAX_TARGETS];
    h2o_http1client_ctx_t ctx[RT_HTTPC_MAX_TARGETS]; /* per target: its TLS context and its callers' timeout */
} worker_pools_t;

/* Indexed by worker id; reachable from here for the life of the process. */
static worker_pools_t *per_worker[257];
static int ntargets;

static SSL_CTX *tls_ctx[RT_HTTPC_MAX_TARGETS];

int rt_httpc_target_tls(const rt_httpc_target_t *t, const char *ca_file, const char **why)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_default_verify_paths(c);
    /* h2o 2.2.5 does not check the certificate's name: OpenSSL does, for this target's host (or address) */
    X509_VERIFY_PARAM *p = SSL_CTX_get0_param(c);
    int ip = X509_VERIFY_PARAM_set1_ip_asc(p, t->host) == 1;
    if (!ip)
        X509_VERIFY_PARAM_set1_host(p, t->host, 0);
    if (ca_file && ca_file[0] && SSL_CTX_load_verify_locations(c, ca_file, NULL) != 1) {
        *why = "cannot be read as PEM certificates";
        SSL_CTX_free(c);
        return -1;
    }
    tls_ctx[t->slot] = c;
    return 0;
}

void rt_httpc_tls_free(void)
{
    for (int i = 0; i < RT_HTTPC_MAX_TARGETS; i++) {
        if (tls_ctx[i])
            SSL_CTX_free(tls_ctx[i]);
        tls_ctx[i] = NULL;
    }
}

int rt_httpc_target_parse(const char *url, rt_httpc_target_t *t, int allow_tls, const char **why)
{
    memset(t, 0, sizeof(*t));
    t->tls = allow_tls && strncmp(url, "https://", 8) == 0;
    if (strncmp(url, "http://", 7) != 0 && !t->tls) {
        *why = strncmp(url, "https://", 8) == 0 ? "https is not supported; use http:// to a backend on a trusted network"
                                                : "must start with http://";
        return -1;
    }
    const char *h = url + (t->tls ? 8 : 7), *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    const char *colon = memchr(h, ':', hl);
    long port = t->tls ? 443 : 80;
    if (colon) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (end != h + hl || port < 1 || port > 65535) {
            *why = "has a bad port";
            return -1;
        }
    }
    size_t namelen = colon ? (size_t)(colon - h) : hl;
    if (namelen == 0 || ntargets >= RT_HTTPC_MAX_TARGETS) {
        *why = namelen == 0 ? "has no host" : "too many distinct hook URLs";
        return -1;
    }
    t->host = rt_strndup(rt_str(h, namelen));
    t->authority = rt_strndup(rt_str(h, hl));
    t->path = rt_strndup(slash ? rt_cstr(slash) : RT_STRLIT("/"));
    t->port = (uint16_t)port;
    t->slot = ntargets++;
    return 0;
}

void rt_httpc_target_free(rt_httpc_target_t *t)
{
    free(t->host);
    free(t->path);
    free(t->authority);
    memset(t, 0, sizeof(*t));
}

static worker_pools_t *pools_of(rt_worker_t *w, const rt_httpc_target_t *t, uint64_t timeout_ms)
{
    worker_pools_t *wp = per_worker[w->id];
    if (wp == NULL)
        wp = per_worker[w->id] = rt_calloc(1, sizeof(*wp));
    if (!wp->ready[t->slot]) {
        h2o_http1client_ctx_t *ctx = &wp->ctx[t->slot];
        ctx->loop = w->ctx.loop;
        ctx->getaddr_receiver = &w->ctx.receivers.hostinfo_getaddr;
        ctx->io_timeout = rt_worker_timeout(w, timeout_ms);
        ctx->ssl_ctx = tls_ctx[t->slot];
        /* h2o 2.2.5 does not enforce the capacity: the callers' in-flight bound is what limits connections */
        h2o_socketpool_init_by_hostport(&wp->pools[t->slot], h2o_iovec_init(t->host, strlen(t->host)), t->port, t->tls, 1024);
        h2o_socketpool_set_timeout(&wp->pools[t->slot], w->ctx.loop, 30000); /* idle keep-alive connections */
        wp->ready[t->slot] = 1;
    }
    return wp;
}

static void on_deferred(h2o_timeout_entry_t *e);

static void finish(rt_httpc_call_t *c, int status, const char *err)
{
    c->client = NULL;
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    if (c->starting) { /* the caller does not hold the call yet */
        c->err = err ? err : "no answer";
        c->deadline.cb = on_deferred;
        h2o_timeout_link(c->w->ctx.loop, rt_worker_timeout(c->w, 0), &c->deadline);
        return;
    }
    c->done(c->arg, err ? 0 : status, rt_str(c->in.base, c->in.len), err);
    rt_buf_free(&c->out);
    rt_buf_free(&c->in);
    free(c);
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    rt_httpc_call_t *c = client->data;
    h2o_socket_t *sock = client->sock;
    if (sock != NULL && sock->input->size) {
        if (c->in.len + sock->input->size > RT_HTTPC_MAX_ANSWER) {
            finish(c, 0, "answer too large");
            return -1;
        }
        rt_buf_append(&c->in, sock->input->bytes, sock->input->size);
        h2o_buffer_consume(&sock->input, sock->input->size);
    }
    if (errstr == NULL)
        return 0;
    finish(c, c->status, errstr == h2o_http1client_error_is_eos ? NULL : errstr);
    return 0;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    (void)minor_version, (void)msg, (void)headers, (void)num_headers, (void)rlen;
    rt_httpc_call_t *c = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        finish(c, 0, errstr);
        return NULL;
    }
    c->status = status;
    if (errstr == h2o_http1client_error_is_eos) {
        finish(c, status, NULL);
        return NULL;
    }
    return on_body;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs,
                                          size_t *reqbufcnt, int *method_is_head)
{
    rt_httpc_call_t *c = client->data;
    if (errstr != NULL) {
        finish(c, 0, errstr);
        return NULL;
    }
    c->iov = h2o_iovec_init(c->out.base, c->out.len);
    *reqbufs = &c->iov;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

static void on_deadline(h2o_timeout_entry_t *e)
{
    rt_httpc_call_t *c = rt_container_of(e, rt_httpc_call_t, deadline);
    if (c->client)
        h2o_http1client_cancel(c->client);
    finish(c, 0, "timeout");
}

static void on_deferred(h2o_timeout_entry_t *e)
{
    rt_httpc_call_t *c = rt_container_of(e, rt_httpc_call_t, deadline);
    finish(c, 0, c->err);
}

rt_httpc_call_t *rt_httpc_post(rt_worker_t *w, const rt_httpc_target_t *t, rt_str_t body, const char *headers,
                               uint64_t timeout_ms, rt_httpc_done_t done, void *arg)
{
    worker_pools_t *wp = pools_of(w, t, timeout_ms);
    rt_httpc_call_t *c = rt_calloc(1, sizeof(*c));
    c->done = done;
    c->arg = arg;
    c->w = w;
    c->starting = 1;
    rt_buf_printf(&c->out,
                  "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                  "User-Agent: rtbroker/" RT_VERSION "\r\n%s\r\n",
                  t->path, t->authority, body.len, headers ? headers : "");
    rt_buf_appends(&c->out, body);
    c->deadline.cb = on_deadline;
    h2o_timeout_link(w->ctx.loop, rt_worker_timeout(w, timeout_ms), &c->deadline);
    h2o_http1client_connect_with_pool(&c->client, c, &wp->ctx[t->slot], &wp->pools[t->slot], on_connect);
    c->starting = 0;
    return c;
}

void rt_httpc_cancel(rt_httpc_call_t *c)
{
    if (c->client)
        h2o_http1client_cancel(c->client);
    if (h2o_timeout_is_linked(&c->deadline))
        h2o_timeout_unlink(&c->deadline);
    rt_buf_free(&c->out);
    rt_buf_free(&c->in);
    free(c);
}
