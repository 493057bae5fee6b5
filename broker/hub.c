/*
 * The hub of each worker (its inbox is hub_inbox.c): owns the subscriber
 * lifecycle (open, subscribe with replay and the seam to live, bounded outbound
 * queue, timers, end, release) and the h2o streaming dance (one h2o_send in flight,
 * the rest pending until proceed). Touched only by its worker thread.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "api.h"
#include "auth.h"
#include "config.h"
#include "hub.h"
#include "proxy.h"
#include <h2o/http1.h>
#include "http.h"
#include "ops.h"
#include "presence.h"
#include "userlimit.h"
#include "webhook.h"

rt_worker_t *rt_workers;
size_t rt_nworkers;
rt_bus_t *rt_bus;
__thread rt_worker_t *rt_current_worker;

#define SEND_MAX_IOVS 64
#define CLOSING_READ_MAX (1 << 20) /* bytes read and dropped from a peer after its close is queued */
#define UPGRADED_RCVBUF (256 << 10)  /* kernel receive buffer of an upgraded connection */

/* ---------- timers ---------- */

h2o_timeout_t *rt_worker_timeout(rt_worker_t *w, uint64_t ms)
{
    for (size_t i = 0; i < w->ntimers; i++)
        if (w->timers[i]->ms == ms)
            return &w->timers[i]->timeout;
    w->timers = rt_realloc(w->timers, (w->ntimers + 1) * sizeof(*w->timers));
    rt_timer_list_t *t = rt_calloc(1, sizeof(*t));
    t->ms = ms;
    h2o_timeout_init(w->ctx.loop, &t->timeout, ms);
    w->timers[w->ntimers++] = t;
    return &t->timeout;
}

static void schedule_end(rt_sub_t *sub, rt_end_reason_t why);

static void on_tick(h2o_timeout_entry_t *entry)
{
    rt_worker_t *w = H2O_STRUCT_FROM_MEMBER(rt_worker_t, tick, entry);
    if (w->id == 0 && ++w->ticks % 4 == 0) {
        rt_bus->ops->tick(rt_bus);
        rt_rate_sweep();
        rt_presence_tick();
    }
    if (w->id == 0)
        rt_webhook_tick(); /* retries and the vacated debounce, four times a second */
    rt_hub_expiry_run(w, (int64_t)rt_wall_ms());
    h2o_timeout_link(w->ctx.loop, rt_worker_timeout(w, 250), &w->tick);
}

void rt_hub_init_worker(rt_worker_t *w)
{
    pthread_mutex_init(&w->inbox_lock, NULL);
    rt_hub_inbox_init(w);
    rt_index_init(&w->index);
    h2o_linklist_init_anchor(&w->subs);
    w->tick.cb = on_tick;
    h2o_timeout_link(w->ctx.loop, rt_worker_timeout(w, 250), &w->tick);
}

/* ---------- outbound queue ---------- */

static void outq_push(rt_outq_t *q, rt_outq_entry_t e)
{
    if (q->len == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 4;
        q->v = rt_realloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->len++] = e;
    q->bytes += e.iov.len;
}

/* An empty queue keeps no array: most subscribers are idle most of the time. */
static void outq_release(rt_outq_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (q->v[i].msg)
            rt_msg_unref(q->v[i].msg);
        free(q->v[i].owned);
        q->bytes -= q->v[i].iov.len;
    }
    if (n && q->len > n)
        memmove(q->v, q->v + n, (q->len - n) * sizeof(*q->v));
    q->len -= n;
    if (q->len == 0) {
        free(q->v);
        q->v = NULL;
        q->cap = 0;
    }
}

static void outq_free(rt_outq_t *q)
{
    outq_release(q, q->len);
    free(q->v);
    q->v = NULL;
    q->cap = 0;
}

/* ---------- subscriber lifecycle ---------- */

static void unsubscribe_all(rt_sub_t *sub)
{
    for (size_t i = 0; i < sub->nsubs; i++) {
        rt_sub_presence_left(sub, sub->subs[i]);
        rt_bus->ops->interest(rt_bus, sub->subs[i]->pattern, -1);
        rt_webhook_sub_removed(sub->subs[i]->pattern);
        rt_index_remove(&sub->w->index, sub->subs[i]);
    }
    free(sub->subs);
    sub->subs = NULL;
    sub->nsubs = 0;
}

static void on_sock_written(h2o_socket_t *sock, const char *err);

/* Moves the next pending entries (at most SEND_MAX_IOVS) to inflight, filling iovs; returns how many. Moved, not
 * released: the references go with them until the write completes. */
static size_t take_batch(rt_sub_t *sub, h2o_iovec_t *iovs)
{
    size_t n = sub->pending.len < SEND_MAX_IOVS ? sub->pending.len : SEND_MAX_IOVS, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        iovs[i] = sub->pending.v[i].iov;
        bytes += iovs[i].len;
    }
    rt_metrics_bytes_out(bytes);
    if (n == sub->pending.len && sub->inflight.len == 0) { /* the usual case: the whole queue goes, array and all */
        rt_outq_t empty = sub->inflight;
        sub->inflight = sub->pending;
        sub->pending = empty;
        return n;
    }
    for (size_t i = 0; i < n; i++)
        outq_push(&sub->inflight, sub->pending.v[i]);
    if (sub->pending.len > n)
        memmove(sub->pending.v, sub->pending.v + n, (sub->pending.len - n) * sizeof(*sub->pending.v));
    sub->pending.len -= n;
    sub->pending.bytes -= bytes;
    return n;
}

/* Upgraded connections: write raw bytes (in chunks for a handed-over stream); close once the final bytes are out. */
static void flush_upgraded(rt_sub_t *sub)
{
    static const h2o_iovec_t crlf = {"\r\n", 2}, last_chunk = {"0\r\n\r\n", 5};
    if (sub->sending || sub->sock == NULL || sub->closed)
        return;
    int terminate = sub->chunked && sub->final_queued && !sub->final_sent;
    if (sub->pending.len == 0 && !terminate) {
        if (sub->final_queued) {
            if (h2o_timeout_is_linked(&sub->close_timer))
                h2o_timeout_unlink(&sub->close_timer);
            h2o_timeout_link(sub->w->ctx.loop, &sub->w->ctx.zero_timeout, &sub->close_timer);
        }
        return;
    }
    h2o_iovec_t iovs[SEND_MAX_IOVS + 3], *out = iovs + 1;
    size_t n = take_batch(sub, out);
    if (sub->chunked) {
        if (n > 0) {
            size_t bytes = 0;
            for (size_t i = 0; i < n; i++)
                bytes += out[i].len;
            char *head = rt_malloc(20); /* in flight with the batch (rt_sub_t stays in its allocator size class) */
            iovs[0] = h2o_iovec_init(head, (size_t)snprintf(head, 20, "%zx\r\n", bytes));
            outq_push(&sub->inflight, (rt_outq_entry_t){iovs[0], NULL, head});
            out = iovs, n++;
            out[n++] = crlf;
        }
        if (sub->final_queued && sub->pending.len == 0) {
            out[n++] = last_chunk;
            sub->final_sent = 1;
        }
    }
    sub->sending = 1;
    h2o_socket_write(sub->sock, out, n, on_sock_written);
}

static void flush(rt_sub_t *sub)
{
    if (sub->upgraded) {
        flush_upgraded(sub);
        return;
    }
    if (!sub->streaming || sub->sending || sub->stopped || sub->final_sent || sub->upgrading)
        return;
    if (sub->pending.len == 0 && !sub->final_queued)
        return;
    h2o_iovec_t iovs[SEND_MAX_IOVS];
    size_t n = take_batch(sub, iovs);
    int final = sub->final_queued && sub->pending.len == 0;
    if (final)
        sub->final_sent = 1;
    else
        sub->sending = 1;
    h2o_send(sub->req, iovs, n, final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    rt_sub_t *sub = (rt_sub_t *)gen;
    sub->sending = 0;
    outq_release(&sub->inflight, sub->inflight.len);
    flush(sub);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    rt_sub_t *sub = (rt_sub_t *)gen;
    sub->stopped = 1;
    unsubscribe_all(sub);
}

/* The end of every subscriber: unlink, cancel, let the plugin free its part, free. */
static void destroy(rt_sub_t *sub)
{
    if (sub->closed)
        return;
    sub->closed = 1;
    rt_sub_unwatch(sub, 0); /* the socket may be gone, or h2o's again */
    if (sub->anchor)
        *sub->anchor = NULL;
    if (sub->sock) {
        h2o_socket_close(sub->sock);
        sub->sock = NULL;
    }
    unsubscribe_all(sub);
    h2o_linklist_unlink(&sub->link);
    sub->w->nsubs--;
    for (int i = 0; i < 2; i++)
        if (h2o_timeout_is_linked(&sub->timers[i]))
            h2o_timeout_unlink(&sub->timers[i]);
    if (h2o_timeout_is_linked(&sub->end_timer))
        h2o_timeout_unlink(&sub->end_timer);
    if (h2o_timeout_is_linked(&sub->close_timer))
        h2o_timeout_unlink(&sub->close_timer);
    sub->tp->release(sub);
    rt_sub_expiry_remove(sub);
    rt_ident_free(sub->ident);
    rt_sub_presence_free(sub);
    rt_api_sub_gone(sub);
    outq_free(&sub->pending);
    outq_free(&sub->inflight);
    outq_free(&sub->deferred);
    rt_metrics_conn(sub->tp, -1);
    if (sub->holds == 0)
        free(sub);
}

void rt_sub_hold(rt_sub_t *sub) { sub->holds++; }


static void undefer(rt_sub_t *sub)
{
    for (size_t i = 0; i < sub->deferred.len; i++)
        outq_push(&sub->pending, sub->deferred.v[i]);
    sub->deferred.len = 0, sub->deferred.bytes = 0;
}

void rt_sub_undefer(rt_sub_t *sub)
{
    if (sub->replays_due || sub->closed)
        return;
    for (int slot = 0; slot < 2; slot++)
        if (sub->timer_after_replay & (1u << slot) && sub->timer_cb[slot] != NULL)
            h2o_timeout_link(sub->w->ctx.loop, &sub->w->ctx.zero_timeout, &sub->timers[slot]);
    sub->timer_after_replay = 0;
    if (sub->deferred.len == 0)
        return;
    undefer(sub);
    rt_sub_flush_soon(sub);
}

void rt_sub_put(rt_sub_t *sub)
{
    if (--sub->holds == 0 && sub->closed)
        free(sub);
}

static void on_req_dispose(void *p)
{
    rt_sub_t *sub = *(rt_sub_t **)p;
    if (sub == NULL)
        return;
    sub->req = NULL;
    sub->anchor = NULL;
    if (!sub->upgrading && !sub->upgraded)
        destroy(sub);
}

/* A held answer is out: the connection goes back to h2o for the client's next request (already read, maybe). */
static int give_back(rt_sub_t *sub)
{
    h2o_socket_t *sock = sub->sock;
    if (!sub->held || !sub->responded || !sub->keep_alive || !sub->final_sent || sub->sending || sub->pending.len ||
        sock == NULL || sub->w->shutting_down)
        return 0;
    h2o_accept_ctx_t *ac = &sub->w->accept_ctx;
    sub->sock = NULL;
    h2o_socket_read_stop(sock);
    sock->data = NULL;
    destroy(sub);
    h2o_http1_accept(ac, sock, *h2o_get_timestamp(ac->ctx, NULL, NULL));
    return 1;
}

static void on_close_timer(h2o_timeout_entry_t *entry)
{
    rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, close_timer, entry);
    if (sub->upgrading)
        return; /* h2o still owns the socket: the end of the upgrade flushes, and that links this timer again */
    if (sub->upgraded) {
        if (!give_back(sub))
            destroy(sub);
        return;
    }
    /* a stream whose last bytes the peer does not read (h2o has no write timeout): shut the HTTP/1 connection down
     * under h2o, whose pending write then fails and ends the request (on HTTP/2 the connection carries other streams) */
    h2o_req_t *req = sub->req;
    h2o_socket_t *sock = req && req->version < 0x200 && req->conn->callbacks->get_socket
                             ? req->conn->callbacks->get_socket(req->conn)
                             : NULL;
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

static void on_sock_written(h2o_socket_t *sock, const char *err)
{
    rt_sub_t *sub = sock->data;
    sub->sending = 0;
    outq_release(&sub->inflight, sub->inflight.len);
    if (err != NULL) {
        destroy(sub);
        return;
    }
    flush(sub);
}

static void on_sock_read(h2o_socket_t *sock, const char *err)
{
    rt_sub_t *sub = sock->data;
    if (err != NULL) {
        destroy(sub); /* the peer closed or the connection broke */
        return;
    }
    if (sub->closed)
        return;
    if (sub->held) {
        /* the client's next request, sent before its answer: left for h2o, which gets the connection after it */
        h2o_socket_read_stop(sock);
        return;
    }
    if (sub->final_queued || sub->tp->receive == NULL) {
        /* closing: input is read and dropped, so that h2o buffers nothing and a close with unread input (a TCP reset)
         * does not destroy our last bytes; past a budget we stop reading and the close timer ends the connection.
         * A handed-over stream (SSE, ndjson) takes no input either: past the budget, heartbeats find a dead peer */
        sub->discarded += sock->input->size;
        h2o_buffer_consume(&sock->input, sock->input->size);
        if (sub->discarded > CLOSING_READ_MAX)
            h2o_socket_read_stop(sock);
        return;
    }
    size_t used = sub->tp->receive(sub, sock->input->bytes, sock->input->size);
    if (used > sock->input->size)
        used = sock->input->size;
    h2o_buffer_consume(&sock->input, used);
}

static void on_upgrade_complete(void *data, h2o_socket_t *sock, size_t reqsize)
{
    rt_sub_t *sub = data;
    sub->upgrading = 0;
    if (sock == NULL) {
        destroy(sub);
        return;
    }
    sub->sock = sock;
    sock->data = sub;
    sub->upgraded = 1;
    sub->streaming = 1;
    /* h2o reads until the kernel has nothing left: the kernel's buffer (autotuned up to tcp_rmem's maximum) bounds
     * what one read can pile up in sock->input, so keep it small; a client sends ops and messages, not bulk */
    int rcvbuf = UPGRADED_RCVBUF;
    setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    h2o_buffer_consume(&sock->input, reqsize);
    h2o_socket_read_start(sock, on_sock_read);
    flush(sub);
    if (sock->input->size > 0)
        on_sock_read(sock, NULL);
}

static void add_headers(h2o_req_t *req, const char *const *headers)
{
    for (size_t i = 0; headers && headers[i]; i += 2)
        h2o_add_header_by_str(&req->pool, &req->res.headers, headers[i], strlen(headers[i]), 1, NULL, headers[i + 1],
                              strlen(headers[i + 1]));
}

/* h2o writes the response head, then hands the socket over and frees the request and its connection. */
static void hand_over(rt_sub_t *sub, int status, const char *reason)
{
    h2o_req_t *req = sub->req;
    rt_sub_unwatch(sub, 1); /* the socket is ours after this */
    sub->upgrading = 1;
    req->res.status = status;
    req->res.reason = reason;
    h2o_http1_upgrade(req, NULL, 0, on_upgrade_complete, sub);
}

/* An HTTP/1.1 GET stream or held answer leaves h2o after its head, as an upgrade does: h2o's request and connection
 * state (about 10 KB) would otherwise stay for as long as it lasts. The body is chunked, as h2o would send it; the
 * head says "Connection: upgrade" (h2o's only way to hand a socket over), which means nothing without an Upgrade
 * header. */
static int can_hand_over(h2o_req_t *req)
{
    return req->version == 0x101 && req->entity.base == NULL && h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"));
}

static void hand_over_chunked(rt_sub_t *sub, int status, const char *const *headers)
{
    h2o_req_t *req = sub->req;
    add_headers(req, headers);
    rt_http_add_common_headers(req);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_TRANSFER_ENCODING, NULL, H2O_STRLIT("chunked"));
    sub->chunked = 1;
    hand_over(sub, status, status == 200 ? "OK" : "Status");
}

int rt_sub_upgrade(rt_sub_t *sub, const char *const *headers)
{
    h2o_req_t *req = sub->req;
    if (req == NULL || sub->streaming || sub->responded || sub->tp->receive == NULL || req->version >= 0x200)
        return RT_EINVAL;
    add_headers(req, headers);
    hand_over(sub, 101, "Switching Protocols");
    return RT_OK;
}

int rt_sub_hold_answer(rt_sub_t *sub, uint64_t within_ms, int status, const char *const *headers)
{
    h2o_req_t *req = sub->req;
    if (req == NULL || sub->streaming || sub->responded || sub->stopped || sub->upgrading || sub->ending ||
        !can_hand_over(req) || status != 200)
        return RT_EINVAL;
    /* an answer that may have to be 401 (the token expires first) keeps h2o's request, which can still say so */
    if (rt_sub_expires(sub) && sub->ident->exp_ms - (int64_t)rt_wall_ms() < (int64_t)within_ms + 1000)
        return RT_EINVAL;
    sub->held = 1;
    sub->keep_alive = req->http1_is_persistent;
    hand_over_chunked(sub, 200, headers);
    return RT_OK;
}

int rt_sub_unsubscribe(rt_sub_t *sub, rt_str_t pattern)
{
    for (size_t i = 0; i < sub->nsubs; i++) {
        if (rt_str_eq(sub->subs[i]->pattern, pattern)) {
            rt_sub_presence_left(sub, sub->subs[i]);
            rt_bus->ops->interest(rt_bus, sub->subs[i]->pattern, -1);
            rt_webhook_sub_removed(sub->subs[i]->pattern);
            rt_index_remove(&sub->w->index, sub->subs[i]);
            sub->subs[i] = sub->subs[--sub->nsubs];
            return RT_OK;
        }
    }
    return RT_EINVAL;
}

static void on_end_timer(h2o_timeout_entry_t *entry)
{
    rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, end_timer, entry);
    if (sub->ending || sub->closed)
        return;
    sub->ending = 1;
    unsubscribe_all(sub);
    if (sub->end_reason == RT_END_SLOW)
        rt_metrics_slow();
    sub->tp->end(sub, (rt_end_reason_t)sub->end_reason);
}

/* Ends the subscriber from the next loop turn, never from inside a delivery. */
static void schedule_end(rt_sub_t *sub, rt_end_reason_t why)
{
    if (sub->ending || sub->closed || h2o_timeout_is_linked(&sub->end_timer))
        return;
    sub->end_reason = why;
    h2o_timeout_link(sub->w->ctx.loop, &sub->w->ctx.zero_timeout, &sub->end_timer);
}

void rt_sub_schedule_end(rt_sub_t *sub, rt_end_reason_t why) { schedule_end(sub, why); }

static void on_timer0(h2o_timeout_entry_t *e)
{
    rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, timers[0], e);
    sub->timer_cb[0](sub);
}

static void on_timer1(h2o_timeout_entry_t *e)
{
    rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, timers[1], e);
    sub->timer_cb[1](sub);
}

rt_sub_t *rt_sub_open(rt_request_t *rreq, const rt_transport_t *tp, size_t data_size)
{
    h2o_req_t *req = (h2o_req_t *)rreq;
    rt_worker_t *w = rt_current_worker;
    rt_sub_t *sub = rt_calloc(1, sizeof(*sub) + data_size);
    sub->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*sub->anchor), on_req_dispose);
    *sub->anchor = sub;
    sub->gen.proceed = on_proceed;
    sub->gen.stop = on_stop;
    sub->w = w;
    sub->req = req;
    sub->tp = tp;
    sub->timers[0].cb = on_timer0;
    sub->timers[1].cb = on_timer1;
    sub->end_timer.cb = on_end_timer;
    sub->close_timer.cb = on_close_timer;
    h2o_linklist_insert(&w->subs, &sub->link);
    w->nsubs++;
    const char *why = NULL;
    if (!rt_proxy_take_verdict(sub)) /* else the connect proxy gave the identity or the refusal */
        sub->auth_err = rt_auth_identify(req, &sub->ident, &why);
    if (sub->ident && rt_userlimit_admit(sub->ident->user, &sub->user_slot) != RT_OK)
        sub->auth_err = RT_ERATELIMIT; /* limits.connections_per_user: every subscribe and publish is refused */
    rt_sub_expiry_add(sub);
    rt_metrics_conn(tp, 1);
    rt_sub_watch(sub);
    if (w->shutting_down)
        schedule_end(sub, RT_END_SHUTDOWN);
    return sub;
}

void *rt_sub_data(rt_sub_t *sub) { return sub->data; }
rt_request_t *rt_sub_request(rt_sub_t *sub) { return (rt_request_t *)sub->req; }

rt_str_t rt_sub_cursor(rt_sub_t *sub)
{
    if (sub->cursor_held) /* never 0 while the replay is due: a cursor handed out now must not go back */
        return rt_cstr(sub->cursor);
    size_t n = rt_id_format(sub->cursor, rt_bus->ops->epoch(rt_bus), sub->last_seq);
    return rt_str(sub->cursor, n);
}

int rt_sub_stream_start(rt_sub_t *sub, int status, const char *const *headers)
{
    h2o_req_t *req = sub->req;
    if (req == NULL || sub->streaming || sub->responded || sub->stopped || sub->upgrading)
        return RT_ECLOSED;
    if (can_hand_over(req)) {
        hand_over_chunked(sub, status, headers);
        return RT_OK;
    }
    add_headers(req, headers);
    rt_http_add_common_headers(req);
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Status";
    sub->streaming = 1;
    h2o_start_response(req, &sub->gen);
    flush(sub);
    return RT_OK;
}

void rt_sub_flush(rt_sub_t *sub) { flush(sub); }

static int queue_check(rt_sub_t *sub, size_t len)
{
    if (sub->closed || sub->stopped || sub->final_queued)
        return RT_ECLOSED;
    size_t queued = sub->pending.bytes + sub->inflight.bytes;
    /* the limit is on backlog: one message larger than it still goes out to a subscriber that keeps up */
    if (!sub->ending && queued > 0 && queued + len > rt_lim.max_queue_bytes) {
        schedule_end(sub, RT_END_SLOW);
        return RT_ESLOW;
    }
    return RT_OK;
}

/* Queued for the subscriber; /metrics reports the most any one subscriber has held (waiting and being written). */
static void enqueue(rt_sub_t *sub, rt_outq_entry_t e)
{
    outq_push(&sub->pending, e);
    rt_metrics_queue_held(sub->pending.bytes + sub->inflight.bytes);
    rt_sub_flush_soon(sub);
}

int rt_sub_write_ref(rt_sub_t *sub, rt_str_t bytes, rt_msg_t *msg)
{
    int err = queue_check(sub, bytes.len);
    if (err != RT_OK)
        return err;
    rt_outq_entry_t e = {h2o_iovec_init(bytes.base, bytes.len), msg ? rt_msg_ref(msg) : NULL, NULL};
    if (sub->replays_due && !sub->replaying) {
        outq_push(&sub->deferred, e);
        return RT_OK;
    }
    enqueue(sub, e);
    return RT_OK;
}

int rt_sub_write_copy(rt_sub_t *sub, const char *bytes, size_t len)
{
    int err = queue_check(sub, len);
    if (err != RT_OK)
        return err;
    char *copy = rt_malloc(len);
    memcpy(copy, bytes, len);
    rt_outq_entry_t e = {h2o_iovec_init(copy, len), NULL, copy};
    if (sub->replays_due && !sub->replaying) {
        outq_push(&sub->deferred, e);
        return RT_OK;
    }
    enqueue(sub, e);
    return RT_OK;
}

void rt_sub_close(rt_sub_t *sub)
{
    if (sub->closed || sub->final_queued || sub->responded)
        return;
    undefer(sub);
    unsubscribe_all(sub);
    for (int i = 0; i < 2; i++)
        if (h2o_timeout_is_linked(&sub->timers[i]))
            h2o_timeout_unlink(&sub->timers[i]);
    if (sub->held) { /* no answer: its head is out, so the connection ends without one (no last chunk) */
        sub->final_queued = sub->final_sent = 1;
        h2o_timeout_link(sub->w->ctx.loop, &sub->w->ctx.zero_timeout, &sub->close_timer);
        return;
    }
    if (sub->upgraded || sub->upgrading) {
        /* a peer that stops reading must not hold the connection: close by this deadline regardless */
        h2o_timeout_link(sub->w->ctx.loop, rt_worker_timeout(sub->w, 5000), &sub->close_timer);
        sub->final_queued = 1;
        flush(sub);
        return;
    }
    if (!sub->streaming) {
        static const rt_str_t body = {"{\"error\":\"unavailable\",\"message\":\"the subscription was closed\"}", 63};
        rt_sub_respond(sub, 503, "application/json", &body, 1);
        return;
    }
    sub->final_queued = 1;
    h2o_timeout_link(sub->w->ctx.loop, rt_worker_timeout(sub->w, 5000), &sub->close_timer);
    flush(sub);
}

void rt_sub_respond(rt_sub_t *sub, int status, const char *content_type, const rt_str_t *parts, size_t nparts)
{
    if (sub->closed || sub->stopped || sub->responded || (!sub->held && (sub->streaming || sub->req == NULL || sub->upgrading)))
        return;
    if (sub->held && (sub->final_queued || status != 200)) {
        rt_sub_close(sub); /* the head said otherwise */
        return;
    }
    sub->responded = 1;
    unsubscribe_all(sub);
    for (int i = 0; i < 2; i++)
        if (h2o_timeout_is_linked(&sub->timers[i]))
            h2o_timeout_unlink(&sub->timers[i]);
    size_t len = 0;
    for (size_t i = 0; i < nparts; i++)
        len += parts[i].len;
    char *body = sub->held ? rt_malloc(len + 1) : h2o_mem_alloc_pool(&sub->req->pool, len + 1);
    size_t off = 0;
    for (size_t i = 0; i < nparts; i++) {
        memcpy(body + off, parts[i].base, parts[i].len);
        off += parts[i].len;
    }
    if (sub->held) { /* the body as one chunk, then the last chunk (flush_upgraded); content_type is in the head */
        outq_push(&sub->pending, (rt_outq_entry_t){h2o_iovec_init(body, len), NULL, body});
        sub->final_queued = 1;
        h2o_timeout_link(sub->w->ctx.loop, rt_worker_timeout(sub->w, 5000), &sub->close_timer);
        flush(sub);
        return;
    }
    rt_http_respond(sub->req, status, content_type, body, len);
}

void rt_sub_timer(rt_sub_t *sub, int slot, uint64_t ms, void (*cb)(rt_sub_t *sub))
{
    if (slot < 0 || slot > 1 || sub->closed)
        return;
    if (h2o_timeout_is_linked(&sub->timers[slot]))
        h2o_timeout_unlink(&sub->timers[slot]);
    sub->timer_cb[slot] = cb;
    sub->timer_after_replay &= ~(1u << slot);
    if (cb == NULL)
        return;
    if (ms == 0 && sub->replays_due) { /* "now" means once what the subscriber asked to replay is there */
        sub->timer_after_replay |= 1u << slot;
        return;
    }
    h2o_timeout_t *t = ms == 0 ? &sub->w->ctx.zero_timeout : rt_worker_timeout(sub->w, ms);
    h2o_timeout_link(sub->w->ctx.loop, t, &sub->timers[slot]);
}

void rt_hub_shutdown(rt_worker_t *w)
{
    if (w->shutting_down)
        return;
    w->shutting_down = 1;
    w->shutdown_deadline = rt_now_ms() + (uint64_t)rt_cfg_int("shutdown.drain");
    for (size_t i = 0; i < w->nlisteners; i++) {
        h2o_socket_read_stop(w->listeners[i]);
        h2o_socket_close(w->listeners[i]);
    }
    w->nlisteners = 0;
    for (h2o_linklist_t *l = w->subs.next; l != &w->subs; l = l->next)
        schedule_end(H2O_STRUCT_FROM_MEMBER(rt_sub_t, link, l), RT_END_SHUTDOWN);
    h2o_context_request_shutdown(&w->ctx);
}
