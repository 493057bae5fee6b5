/*
 * Open TCP connections and limits.max_connections. Every accepted socket is counted until
 * h2o disposes of it (the socket's on_close hook stays with the socket through an upgrade to
 * WebSocket or HTTP/2). A connection past the limit is still accepted, and each request on it
 * is answered 503 too_many_connections (JSON, Retry-After, Connection: close), so that a
 * client can tell a full server from a network failure; at most REFUSING_MAX of those at a
 * time, beyond which they are closed at once. Knows nothing of transports.
 */
#include <errno.h>
#include <stdatomic.h>

#include "config.h"
#include "conns.h"
#include "http.h"
#include "hub.h"

#define REFUSING_MAX 256
#define RELAXED memory_order_relaxed

static atomic_long open_conns, refusing;
static atomic_ulong refused_total;
static _Atomic uint64_t last_warning_ms;

static void on_close_counted(void *data)
{
    (void)data;
    atomic_fetch_sub_explicit(&open_conns, 1, RELAXED);
}

static void on_close_refusing(void *data)
{
    (void)data;
    atomic_fetch_sub_explicit(&refusing, 1, RELAXED);
}

static void warn_full(size_t max)
{
    uint64_t now = rt_now_ms(), last = atomic_load_explicit(&last_warning_ms, RELAXED);
    if ((last == 0 || rt_ms_since(last, now) >= 10000) && atomic_compare_exchange_strong(&last_warning_ms, &last, now))
        rt_log(RT_LOG_WARN, "limits.max_connections (%zu) reached: new connections are answered 503 too_many_connections "
                            "(%lu so far)", max, atomic_load_explicit(&refused_total, RELAXED));
}

int rt_conns_admit(h2o_socket_t *sock)
{
    size_t max = rt_lim.max_connections;
    long n = atomic_fetch_add_explicit(&open_conns, 1, RELAXED) + 1;
    if (max == 0 || (size_t)n <= max) {
        sock->on_close.cb = on_close_counted;
        return 1;
    }
    atomic_fetch_sub_explicit(&open_conns, 1, RELAXED);
    atomic_fetch_add_explicit(&refused_total, 1, RELAXED);
    warn_full(max);
    if (atomic_fetch_add_explicit(&refusing, 1, RELAXED) >= REFUSING_MAX) {
        atomic_fetch_sub_explicit(&refusing, 1, RELAXED);
        h2o_socket_close(sock);
        return 0;
    }
    sock->on_close.cb = on_close_refusing;
    return 1;
}

int rt_conns_refuse(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    if (sock == NULL || sock->on_close.cb != on_close_refusing)
        return 0;
    static const char body[] = "{\"error\":\"too_many_connections\",\"message\":\"the server has limits.max_connections "
                               "connections open; retry later\"}\n";
    req->http1_is_persistent = 0;
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, H2O_STRLIT("1"), 1);
    rt_http_respond(req, 503, "application/json", body, sizeof(body) - 1);
    return 1;
}

typedef struct paused {
    h2o_timeout_entry_t timer;
    h2o_socket_t *listener;
    h2o_socket_cb on_accept;
} paused_t;

static void on_resume(h2o_timeout_entry_t *entry)
{
    paused_t *p = H2O_STRUCT_FROM_MEMBER(paused_t, timer, entry);
    if (!rt_current_worker->shutting_down) /* the listeners are closed at shutdown */
        h2o_socket_read_start(p->listener, p->on_accept);
    free(p);
}

void rt_conns_accept_failed(h2o_socket_t *listener, h2o_socket_cb on_accept, int err)
{
    if (err != EMFILE && err != ENFILE && err != ENOBUFS && err != ENOMEM)
        return; /* EAGAIN and the like: nothing more to accept now */
    /* the listener stays readable while the connection waits in the backlog: retry in 100 ms, not in a busy loop */
    rt_log(RT_LOG_WARN, "accept: %s; pausing a listener for 100 ms (raise the open file limit or lower "
                        "limits.max_connections)", strerror(err));
    paused_t *p = rt_calloc(1, sizeof(*p));
    p->timer.cb = on_resume;
    p->listener = listener;
    p->on_accept = on_accept;
    h2o_socket_read_stop(listener);
    h2o_timeout_link(rt_current_worker->ctx.loop, rt_worker_timeout(rt_current_worker, 100), &p->timer);
}

long rt_conns_open(void) { return atomic_load_explicit(&open_conns, RELAXED); }
unsigned long rt_conns_refused_total(void) { return atomic_load_explicit(&refused_total, RELAXED); }
