/*
 * h2o setup and routing. One h2o_globalconf_t; per worker an h2o context on its own
 * evloop accepting on dup()s of the shared listening sockets (no SO_REUSEPORT, so a
 * port already taken by another process is an error, never a silent share).
 * Routes: /pub, /sub and plugins' explicit paths, /healthz /readyz /metrics, then
 * static files from web.root. A TLS listener's accept context per worker carries the
 * listener's SSL_CTX (tls.c), swapped on SIGHUP by a task posted to each worker.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "conns.h"
#include "ratelimit.h"
#include "hub.h"
#include "history_api.h"
#include "http.h"
#include "proxy.h"
#include "ops.h"
#include "plugin.h"
#include "publish.h"
#include "server.h"
#include "tls.h"
#include "webhook.h"

static h2o_globalconf_t globalconf;
static int *listen_fds;
static size_t nlisten;
static h2o_accept_ctx_t *tls_accept; /* [worker * nlisten + listener], for TLS listeners */
static size_t nmain;                 /* listeners [nmain, nlisten) are api.listen's: the server API only */
static uint16_t api_ports[16];

/* Whether the request came on an api.listen listener (ports differ between listeners of one host). */
static int on_api_listener(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    if (nlisten == nmain || req->conn->callbacks->get_sockname == NULL ||
        req->conn->callbacks->get_sockname(req->conn, (struct sockaddr *)&ss) == 0)
        return 0;
    uint16_t port = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port;
    for (size_t i = 0; i < nlisten - nmain; i++)
        if (api_ports[i] == port)
            return 1;
    return 0;
}

static int is_get(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

static int path_is(rt_str_t path, const char *prefix)
{
    size_t n = strlen(prefix);
    return path.len >= n && memcmp(path.base, prefix, n) == 0 && (path.len == n || path.base[n] == '/');
}

static void subscribe_request(h2o_req_t *req, const rt_transport_t *tp)
{
    if (!is_get(req) && !(tp && (rt_plugin_flags(tp) & RT_TRANSPORT_ANY_METHOD))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
        rt_http_error_status(req, 405, "method_not_allowed", "subscribe with GET");
        return;
    }
    if (rt_current_worker->shutting_down) {
        rt_http_error_status(req, 503, "unavailable", "the server is shutting down; retry on another node");
        return;
    }
    if (tp == NULL) {
        rt_http_error_status(req, 406, "not_acceptable", "no loaded transport takes this request");
        return;
    }
    char ip[64];
    if (rt_lim.connections_per_ip > 0 && (rt_peer_ip(req, ip, sizeof(ip)), !rt_rate_allow('c', rt_cstr(ip), rt_lim.connections_per_ip))) {
        rt_metrics_rate_limited("connect");
        rt_http_error(req, RT_ERATELIMIT, "too many new subscriptions from this address (limits.connections_per_ip)");
        return;
    }
    if (rt_proxy_gates_requests())
        rt_proxy_request(req, tp); /* the backend decides (connect, subscribe); the request waits for it */
    else
        tp->start((rt_request_t *)req);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    if (rt_conns_refuse(req))
        return 0;
    rt_str_t path = rt_req_path(req);
    if (nlisten > nmain) { /* api.listen: the server API there and only there */
        int api_conn = on_api_listener(req);
        if (api_conn != path_is(path, "/api") && !(api_conn && rt_str_eqc(path, "/healthz"))) {
            rt_http_error_status(req, 404, "not_found", api_conn ? "this listener (api.listen) serves only /api/" :
                                                                   "the server API is served on api.listen");
            return 0;
        }
        if (api_conn && !path_is(path, "/api"))
            return rt_ops_handle(req, path), 0;
    }
    if (path_is(path, "/api")) {
        rt_api_handle(req, path);
        return 0;
    }
    const rt_transport_t *tp = rt_plugins_by_path(path);
    if (path_is(path, "/pub") || path_is(path, "/sub") || path_is(path, "/history") || path_is(path, "/presence") || tp != NULL) {
        if (!rt_origin_allowed(req)) {
            rt_http_error_status(req, 403, "forbidden", "this Origin is not allowed (http.allowed_origins)");
            return 0;
        }
        if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("OPTIONS"))) {
            rt_cors_preflight(req);
            return 0;
        }
    }
    if (path_is(path, "/pub")) {
        rt_publish_handle(req, path);
        return 0;
    }
    if (path_is(path, "/history")) {
        rt_history_handle(req);
        return 0;
    }
    if (path_is(path, "/presence")) {
        rt_presence_handle(req);
        return 0;
    }
    if (path_is(path, "/sub")) {
        subscribe_request(req, is_get(req) ? rt_plugins_negotiate(req) : NULL);
        return 0;
    }
    if (tp != NULL) {
        subscribe_request(req, tp);
        return 0;
    }
    if (rt_ops_handle(req, path) == 0)
        return 0;
    return -1; /* static files */
}

static int open_listener(const rt_listen_addr_t *a, char *err, size_t errlen)
{
    int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;
    if (fd < 0) {
        snprintf(err, errlen, "listen %s: socket: %s", a->text, strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (a->ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, (const struct sockaddr *)&a->ss, a->len) != 0) {
        snprintf(err, errlen, "listen %s: cannot bind: %s%s", a->text, strerror(errno),
                 errno == EADDRINUSE ? " (another process listens there; choose another port with --listen)" : "");
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) != 0) {
        snprintf(err, errlen, "listen %s: %s", a->text, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int rt_server_init(size_t nworkers, char *err, size_t errlen)
{
    h2o_config_init(&globalconf);
    /* bodies a little over the message limit are read so the API can answer 413 with JSON; beyond that h2o
     * refuses before reading (plain text) */
    globalconf.max_request_entity_size = (size_t)rt_cfg_int("limits.max_message_bytes") * 2 + (1 << 20);
    if (globalconf.max_request_entity_size < (size_t)rt_cfg_int("api.max_body_bytes") + (1 << 20))
        globalconf.max_request_entity_size = (size_t)rt_cfg_int("api.max_body_bytes") + (1 << 20);
    /* a request's headers and body must arrive within this (slowloris); h2o then closes the connection */
    globalconf.http1.req_timeout = (uint64_t)rt_cfg_int("limits.request_timeout");
    h2o_hostconf_t *host = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h));
    h->on_req = on_req;
    const char *root = rt_cfg_str("web.root");
    if (root[0])
        h2o_file_register(pc, root, NULL, NULL, 0);
    rt_http_register_not_found(pc);

    const rt_cfg_value_t *listen = rt_cfg("listen"), *api = rt_cfg("api.listen");
    listen_fds = rt_calloc(listen->nlist + api->nlist, sizeof(int));
    for (size_t i = 0; i < listen->nlist + api->nlist; i++) {
        rt_listen_addr_t a;
        const char *text = i < listen->nlist ? listen->list[i] : api->list[i - listen->nlist];
        if (rt_parse_addr(text, &a) != 0 || (i >= listen->nlist && i - listen->nlist >= sizeof(api_ports) / sizeof(api_ports[0]))) {
            snprintf(err, errlen, "config: api.listen: \"%s\" is not an address host:port (at most 16 entries)", text);
            return -1;
        }
        if ((listen_fds[nlisten] = open_listener(&a, err, errlen)) < 0)
            return -1;
        if (i >= listen->nlist)
            api_ports[i - listen->nlist] = a.ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&a.ss)->sin6_port
                                                                      : ((struct sockaddr_in *)&a.ss)->sin_port;
        nlisten++;
    }
    nmain = listen->nlist;
    rt_nworkers = nworkers;
    rt_workers = rt_calloc(nworkers, sizeof(*rt_workers));
    tls_accept = rt_calloc(nworkers * nlisten, sizeof(*tls_accept));
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    h2o_accept_ctx_t *ac = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < 16; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            rt_conns_accept_failed(listener, on_accept, errno);
            return;
        }
        if (!rt_conns_admit(sock))
            continue;
        /* small frames go out now: Nagle plus delayed ACKs would hold them up to 40 ms */
        int one = 1;
        setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        h2o_accept(ac, sock);
    }
}

static h2o_barrier_t started;

/* Everything h2o of a worker is created on its own thread: h2o keeps per-thread buffer
 * allocators, and a socket made on another thread would share that thread's. */
static void worker_setup(rt_worker_t *w)
{
    rt_current_worker = w;
    h2o_context_init(&w->ctx, h2o_evloop_create(), &globalconf);
    w->accept_ctx.ctx = &w->ctx;
    w->accept_ctx.hosts = globalconf.hosts;
    rt_hub_init_worker(w);
    w->listeners = rt_calloc(nlisten, sizeof(*w->listeners));
    for (size_t k = 0; k < nlisten; k++) {
        int fd = dup(listen_fds[k]);
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        h2o_socket_t *sock = h2o_evloop_socket_create(w->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
        sock->data = &w->accept_ctx;
        if (rt_tls_ctx(k) != NULL) {
            h2o_accept_ctx_t *ac = &tls_accept[(size_t)w->id * nlisten + k];
            *ac = w->accept_ctx;
            ac->ssl_ctx = rt_tls_ctx(k);
            SSL_CTX_up_ref(ac->ssl_ctx); /* this worker's reference, dropped when a reload replaces it */
            sock->data = ac;
        }
        h2o_socket_read_start(sock, on_accept);
        w->listeners[w->nlisteners++] = sock;
    }
}

typedef struct tls_swap {
    h2o_accept_ctx_t *ac;
    SSL_CTX *ctx; /* the new context, then the old one */
    h2o_timeout_entry_t later;
} tls_swap_t;

static void tls_release_old(h2o_timeout_entry_t *entry)
{
    tls_swap_t *s = H2O_STRUCT_FROM_MEMBER(tls_swap_t, later, entry);
    SSL_CTX_free(s->ctx);
    free(s);
}

/* On the worker: new handshakes use the new context. h2o creates a connection's SSL (which holds a reference to its
 * context) only when the first bytes arrive, so a connection accepted just before still points at the old context
 * without a reference; this worker keeps its reference until the handshake timeout has closed every such one. */
static void tls_swap_on_worker(void *arg)
{
    tls_swap_t *s = arg;
    SSL_CTX *old = s->ac->ssl_ctx;
    s->ac->ssl_ctx = s->ctx;
    s->ctx = old;
    s->later.cb = tls_release_old;
    h2o_timeout_link(rt_current_worker->ctx.loop, rt_worker_timeout(rt_current_worker, globalconf.handshake_timeout + 1000),
                     &s->later);
}

void rt_server_set_tls_ctx(size_t listener, SSL_CTX *ctx)
{
    for (size_t i = 0; i < rt_nworkers; i++) {
        tls_swap_t *s = rt_calloc(1, sizeof(*s));
        s->ac = &tls_accept[i * nlisten + listener];
        s->ctx = ctx;
        SSL_CTX_up_ref(ctx);
        rt_hub_post(&rt_workers[i], tls_swap_on_worker, s);
    }
}

static void *worker_main(void *arg)
{
    rt_worker_t *w = arg;
    worker_setup(w);
    h2o_barrier_wait(&started);
    rt_hub_set_ready(); /* every inbox exists now; before this worker serves anyone, broadcasts must flow */
    while (!w->shutting_down || (w->nsubs > 0 && rt_now_ms() < w->shutdown_deadline))
        h2o_evloop_run(w->ctx.loop, 100);
    /* let the last goodbyes and answers reach the sockets */
    uint64_t until = rt_now_ms() + 200;
    while (rt_now_ms() < until)
        h2o_evloop_run(w->ctx.loop, 20);
    if (w->id == 0)
        rt_webhook_worker_shutdown(); /* calls in flight are dropped with the loop */
    rt_buf_free(&w->scratch);
    return NULL;
}

void rt_server_start(void)
{
    h2o_barrier_init(&started, rt_nworkers + 1);
    for (size_t i = 0; i < rt_nworkers; i++) {
        rt_workers[i].id = (int)i;
        h2o_multithread_create_thread(&rt_workers[i].tid, NULL, worker_main, &rt_workers[i]);
    }
    h2o_barrier_wait(&started); /* every inbox exists before anything is published or signalled */
}

void rt_server_shutdown(void)
{
    for (size_t i = 0; i < rt_nworkers; i++)
        h2o_multithread_send_message(&rt_workers[i].receiver, &rt_workers[i].shutdown_msg);
    /* the workers close their copies; once this one is closed too, new connections are refused at once rather
     * than left in the backlog, unanswered, until the drain ends */
    for (size_t i = 0; i < nlisten; i++)
        close(listen_fds[i]);
    for (size_t i = 0; i < rt_nworkers; i++)
        pthread_join(rt_workers[i].tid, NULL);
}
