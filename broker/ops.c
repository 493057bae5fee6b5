/*
 * Health, readiness and Prometheus metrics. Counters are relaxed atomics bumped from
 * any worker (the per-delivery ones kept per thread); the per-transport ones are indexed
 * by the order plugins were loaded.
 */
#include <stdatomic.h>

#include "api.h"
#include "bus.h"
#include "conns.h"
#include "hub.h"
#include "http.h"
#include "presence.h"
#include "proxy.h"
#include "webhook.h"
#include "ops.h"

#define MAX_TP 16

static const rt_transport_t *tps[MAX_TP];
static size_t ntps;
static atomic_long conns[MAX_TP];
static atomic_ulong published, publish_failed, publish_paced, slow, replays, gaps, auth_failures, http_4xx, http_5xx;

#define BUMP(c, n) atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)

void rt_metrics_register_transport(const rt_transport_t *tp)
{
    if (ntps < MAX_TP)
        tps[ntps++] = tp;
}

static int tp_index(const rt_transport_t *tp)
{
    for (size_t i = 0; i < ntps; i++)
        if (tps[i] == tp)
            return (int)i;
    return -1;
}

void rt_metrics_conn(const rt_transport_t *tp, int delta)
{
    int i = tp_index(tp);
    if (i >= 0)
        BUMP(conns[i], delta);
}

/* The per-delivery counters are per thread: a shared counter bumped by every worker on every delivery costs a
 * locked add and a cache line passed between cores. Each thread adds to its own block (relaxed load and store:
 * one writer) and /metrics sums the blocks; a block outlives its thread so that the totals never go down. */
typedef struct tcounts {
    atomic_ulong delivered[MAX_TP], bytes_out;
    struct tcounts *next;
} tcounts_t;

static _Atomic(tcounts_t *) all_tcounts;
static __thread tcounts_t *my_tcounts;

static tcounts_t *thread_counts(void)
{
    if (my_tcounts == NULL) {
        tcounts_t *t = rt_calloc(1, sizeof(*t));
        t->next = atomic_load(&all_tcounts);
        while (!atomic_compare_exchange_weak(&all_tcounts, &t->next, t))
            ;
        my_tcounts = t;
    }
    return my_tcounts;
}

static inline void tbump(atomic_ulong *c, unsigned long n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Every thread's counts added up (plain numbers in the atomics' places). */
typedef struct {
    unsigned long delivered[MAX_TP], bytes_out;
} tsums_t;

static tsums_t tsum(void)
{
    tsums_t s = {0};
    for (tcounts_t *t = atomic_load(&all_tcounts); t != NULL; t = t->next) {
        for (size_t i = 0; i < ntps; i++)
            s.delivered[i] += atomic_load_explicit(&t->delivered[i], memory_order_relaxed);
        s.bytes_out += atomic_load_explicit(&t->bytes_out, memory_order_relaxed);
    }
    return s;
}

void rt_metrics_delivered(const rt_transport_t *tp, size_t messages, size_t bytes)
{
    (void)bytes;
    int i = tp_index(tp);
    if (i >= 0)
        tbump(&thread_counts()->delivered[i], messages);
}

void rt_metrics_bytes_out(size_t bytes) { tbump(&thread_counts()->bytes_out, bytes); }
void rt_metrics_published(int ok)
{
    if (ok)
        BUMP(published, 1);
    else
        BUMP(publish_failed, 1);
}
void rt_metrics_slow(void) { BUMP(slow, 1); }
void rt_metrics_publish_paced(void) { BUMP(publish_paced, 1); }

/* The most bytes one subscriber has held (waiting and being written) since the start: limits.max_queue_bytes plus
 * at most one message when the limit holds. A relaxed load first: past the warm-up a new peak is rare. */
static atomic_ulong queue_peak;
void rt_metrics_queue_held(size_t bytes)
{
    unsigned long cur = atomic_load_explicit(&queue_peak, memory_order_relaxed);
    while (bytes > cur && !atomic_compare_exchange_weak_explicit(&queue_peak, &cur, bytes, memory_order_relaxed,
                                                                 memory_order_relaxed))
        ;
}
void rt_metrics_replay(int gap)
{
    BUMP(replays, 1);
    if (gap)
        BUMP(gaps, 1);
}
void rt_metrics_auth_failure(void) { BUMP(auth_failures, 1); }
static atomic_ulong rate_limited_pub, rate_limited_conn, ephemeral;
void rt_metrics_ephemeral(void) { BUMP(ephemeral, 1); }
void rt_metrics_rate_limited(const char *kind)
{
    if (kind[0] == 'p')
        BUMP(rate_limited_pub, 1);
    else
        BUMP(rate_limited_conn, 1);
}

void rt_metrics_http_error(int status)
{
    if (status >= 500)
        BUMP(http_5xx, 1);
    else
        BUMP(http_4xx, 1);
}

#define LOAD(c) atomic_load_explicit(&(c), memory_order_relaxed)

static void metrics(h2o_req_t *req)
{
    rt_buf_t b = {0};
    tsums_t sums = tsum();
    rt_buf_appendc(&b, "# HELP rtbroker_connections Open subscriber connections by transport.\n"
                       "# TYPE rtbroker_connections gauge\n");
    for (size_t i = 0; i < ntps; i++)
        rt_buf_printf(&b, "rtbroker_connections{transport=\"%s\"} %ld\n", tps[i]->name, LOAD(conns[i]));
    rt_buf_appendc(&b, "# HELP rtbroker_messages_delivered_total Messages handed to subscribers by transport.\n"
                       "# TYPE rtbroker_messages_delivered_total counter\n");
    for (size_t i = 0; i < ntps; i++)
        rt_buf_printf(&b, "rtbroker_messages_delivered_total{transport=\"%s\"} %lu\n", tps[i]->name, sums.delivered[i]);
    rt_buf_printf(&b,
                  "# HELP rtbroker_messages_published_total Messages accepted into history.\n"
                  "# TYPE rtbroker_messages_published_total counter\nrtbroker_messages_published_total %lu\n"
                  "# HELP rtbroker_publish_failures_total Publishes refused by the bus.\n"
                  "# TYPE rtbroker_publish_failures_total counter\nrtbroker_publish_failures_total %lu\n"
                  "# HELP rtbroker_publish_paced_total POST /pub answers held until the workers had written a fan-out "
                  "that took more than one turn of the loop.\n"
                  "# TYPE rtbroker_publish_paced_total counter\nrtbroker_publish_paced_total %lu\n"
                  "# HELP rtbroker_bytes_out_total Bytes written to subscriber streams.\n"
                  "# TYPE rtbroker_bytes_out_total counter\nrtbroker_bytes_out_total %lu\n"
                  "# HELP rtbroker_slow_consumer_closes_total Subscribers closed for exceeding limits.max_queue_bytes.\n"
                  "# TYPE rtbroker_slow_consumer_closes_total counter\nrtbroker_slow_consumer_closes_total %lu\n"
                  "# HELP rtbroker_replays_total Subscriptions that resumed from an id.\n"
                  "# TYPE rtbroker_replays_total counter\nrtbroker_replays_total %lu\n"
                  "# HELP rtbroker_gaps_total Resumes whose history was incomplete.\n"
                  "# TYPE rtbroker_gaps_total counter\nrtbroker_gaps_total %lu\n"
                  "# HELP rtbroker_auth_failures_total Refused subscribe or publish attempts.\n"
                  "# TYPE rtbroker_auth_failures_total counter\nrtbroker_auth_failures_total %lu\n"
                  "# HELP rtbroker_http_errors_total Error answers by class.\n# TYPE rtbroker_http_errors_total counter\n"
                  "rtbroker_http_errors_total{class=\"4xx\"} %lu\nrtbroker_http_errors_total{class=\"5xx\"} %lu\n",
                  LOAD(published), LOAD(publish_failed), LOAD(publish_paced), sums.bytes_out, LOAD(slow),
                  LOAD(replays), LOAD(gaps), LOAD(auth_failures), LOAD(http_4xx), LOAD(http_5xx));
    rt_buf_printf(&b,
                  "# HELP rtbroker_rate_limited_total Requests refused by a rate limit.\n"
                  "# TYPE rtbroker_rate_limited_total counter\nrtbroker_rate_limited_total{kind=\"publish\"} %lu\n"
                  "rtbroker_rate_limited_total{kind=\"connect\"} %lu\n"
                  "# HELP rtbroker_ephemeral_messages_total Ephemeral messages sent (never stored).\n"
                  "# TYPE rtbroker_ephemeral_messages_total counter\nrtbroker_ephemeral_messages_total %lu\n",
                  LOAD(rate_limited_pub), LOAD(rate_limited_conn), LOAD(ephemeral));
    rt_buf_printf(&b,
                  "# HELP rtbroker_subscriber_queue_peak_bytes The most bytes one subscriber has held queued "
                  "(waiting and being written) since the start.\n"
                  "# TYPE rtbroker_subscriber_queue_peak_bytes gauge\nrtbroker_subscriber_queue_peak_bytes %lu\n",
                  LOAD(queue_peak));
    rt_buf_printf(&b,
                  "# HELP rtbroker_tcp_connections Open TCP connections (what limits.max_connections counts).\n"
                  "# TYPE rtbroker_tcp_connections gauge\nrtbroker_tcp_connections %ld\n"
                  "# HELP rtbroker_connections_refused_total Connections refused by limits.max_connections.\n"
                  "# TYPE rtbroker_connections_refused_total counter\nrtbroker_connections_refused_total %lu\n",
                  rt_conns_open(), rt_conns_refused_total());
    rt_presence_metrics(&b);
    rt_proxy_metrics(&b);
    rt_webhook_metrics(&b);
    rt_api_metrics(&b);
    rt_bus->ops->metrics(rt_bus, &b);
    rt_http_respond_buf(req, 200, "text/plain; version=0.0.4", &b);
}

void rt_metrics_conns_json(rt_buf_t *b)
{
    rt_buf_appendc(b, "{");
    for (size_t i = 0; i < ntps; i++)
        rt_buf_printf(b, "%s\"%s\":%ld", i ? "," : "", tps[i]->name, LOAD(conns[i]));
    rt_buf_appendc(b, "}");
}

int rt_ops_handle(h2o_req_t *req, rt_str_t path)
{
    if (rt_str_eqc(path, "/healthz")) {
        rt_http_respond(req, 200, "text/plain", H2O_STRLIT("ok\n"));
        return 0;
    }
    if (rt_str_eqc(path, "/readyz")) {
        if (rt_bus->ops->ready(rt_bus) && !rt_current_worker->shutting_down)
            rt_http_respond(req, 200, "text/plain", H2O_STRLIT("ready\n"));
        else
            rt_http_error_status(req, 503, "unavailable", "the bus is not connected or the server is draining");
        return 0;
    }
    if (rt_str_eqc(path, "/metrics")) {
        metrics(req);
        return 0;
    }
    return -1;
}
