/*
 * Webhooks, the sender: deliveries wait in lanes, one per (endpoint, topic), and all HTTP runs on worker 0's loop
 * through httpclient.c (kept-alive sockets). A lane sends its oldest delivery and nothing else of it until that one
 * is answered 2xx or given up after max_attempts (exponential backoff from webhooks.retry_delay up to
 * webhooks.retry_max_delay): so per topic, order is kept. At most webhooks.max_queue deliveries are held and at most
 * webhooks.max_in_flight calls run; past the queue's bound a delivery is dropped, counted and logged.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "map.h"
#include "presence.h"
#include "webhook.h"

#define MAX_EPS 8

typedef struct lane {
    char *key; /* "EP US topic" */
    int ep;
    rt_wh_delivery_t *head, *tail;
    rt_httpc_call_t *call;  /* the head's call in flight */
    uint64_t retry_at;      /* waiting for a retry until then */
    int ready;              /* in the ready list (waiting for a free call slot) */
    struct lane *next_ready, *next_retry;
} lane_t;

/* handed over from any thread */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rt_wh_delivery_t *in_head, *in_tail;
static int drain_posted;
static atomic_size_t held; /* every delivery not yet finished: the queue's depth */
static uint64_t last_drop_log;
static unsigned long drops_unlogged;
/* worker 0 only */
static rt_map_t lanes;
static lane_t *ready_head, *ready_tail, *retrying;
static size_t in_flight;
static int stopping;

static const double bucket_s[] = {0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600};
#define NBUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))
static atomic_ulong m_delivered[MAX_EPS], m_failed[MAX_EPS], m_retries[MAX_EPS], m_dropped, m_buckets[NBUCKETS],
    m_sum_ms;

void rt_wh_delivery_free(rt_wh_delivery_t *d)
{
    free(d->topic);
    free(d->id);
    rt_buf_free(&d->body);
    free(d);
}

static void drain(void *arg);

int rt_wh_submit(rt_wh_delivery_t *d)
{
    if (atomic_fetch_add(&held, 1) >= rt_wh_set.max_queue) {
        atomic_fetch_sub(&held, 1);
        atomic_fetch_add(&m_dropped, 1);
        uint64_t now = rt_now_ms();
        pthread_mutex_lock(&lock);
        drops_unlogged++;
        if (last_drop_log == 0 || now - last_drop_log >= 10000) {
            rt_log(RT_LOG_WARN, "webhooks: the queue is full (webhooks.max_queue %zu): dropped %lu event(s) for %s, "
                                "the last %s of topic %s; is the receiver down or slow?",
                   rt_wh_set.max_queue, drops_unlogged, rt_wh_eps[d->ep].url, d->id, d->topic);
            last_drop_log = now, drops_unlogged = 0;
        }
        pthread_mutex_unlock(&lock);
        if (d->settle)
            d->settle(d, -1);
        else
            rt_wh_delivery_free(d);
        return -1;
    }
    d->next = NULL;
    pthread_mutex_lock(&lock);
    if (in_tail)
        in_tail->next = d;
    else
        in_head = d;
    in_tail = d;
    int post = !drain_posted && rt_nworkers > 0;
    drain_posted |= post;
    pthread_mutex_unlock(&lock);
    if (post)
        rt_hub_post(&rt_workers[0], drain, NULL);
    return 0;
}

void rt_wh_count(int ep, int failed) { atomic_fetch_add(failed ? &m_failed[ep] : &m_retries[ep], 1); }

void rt_wh_sign(const rt_wh_endpoint_t *e, long t, rt_str_t body, char *hex)
{
    rt_buf_t msg = {0};
    rt_buf_printf(&msg, "%ld.", t);
    rt_buf_appends(&msg, body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), e->secret, (int)e->secret_len, (unsigned char *)msg.base, msg.len, mac, &len);
    for (unsigned i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", mac[i]);
    rt_buf_free(&msg);
}

static void make_ready(lane_t *l);
static void pump(void);

static void lane_pop(lane_t *l)
{
    rt_wh_delivery_t *d = l->head;
    l->head = d->next;
    if (l->head == NULL)
        l->tail = NULL;
    atomic_fetch_sub(&held, 1);
}

static void lane_maybe_free(lane_t *l)
{
    if (l->head || l->call || l->retry_at || l->ready)
        return;
    rt_map_del(&lanes, rt_cstr(l->key));
    free(l->key);
    free(l);
}

static void count_latency(uint64_t t0)
{
    uint64_t ms = rt_ms_since(t0, rt_now_ms());
    atomic_fetch_add(&m_sum_ms, ms);
    for (size_t i = 0; i < NBUCKETS; i++)
        if (ms <= bucket_s[i] * 1000)
            atomic_fetch_add(&m_buckets[i], 1);
}

static void on_answer(void *arg, int status, rt_str_t body, const char *err)
{
    (void)body;
    lane_t *l = arg;
    rt_wh_delivery_t *d = l->head;
    const rt_wh_endpoint_t *e = &rt_wh_eps[l->ep];
    int ok = status >= 200 && status < 300;
    l->call = NULL;
    in_flight--;
    if (ok) {
        atomic_fetch_add(&m_delivered[l->ep], 1);
        count_latency(d->t0);
    } else {
        rt_log(RT_LOG_DEBUG, "webhooks: %s answered %s%d for %s (attempt %d of %d)", e->url, err ? err : "status ",
               err ? 0 : status, d->id, d->attempts, e->max_attempts);
    }
    if (d->settle) { /* the carrier retries (another node may) */
        lane_pop(l);
        d->settle(d, ok);
    } else if (ok || d->attempts >= e->max_attempts) {
        if (!ok) {
            atomic_fetch_add(&m_failed[l->ep], 1);
            rt_log(RT_LOG_WARN, "webhooks: gave up on event %s (topic %s) for %s after %d attempts; the last: %s%d",
                   d->id, d->topic, e->url, d->attempts, err ? err : "status ", err ? 0 : status);
        }
        lane_pop(l);
        rt_wh_delivery_free(d);
    } else {
        atomic_fetch_add(&m_retries[l->ep], 1);
        uint64_t delay = rt_wh_set.retry_ms;
        for (int i = 1; i < d->attempts && delay < rt_wh_set.retry_max_ms; i++)
            delay *= 2;
        if (delay > rt_wh_set.retry_max_ms)
            delay = rt_wh_set.retry_max_ms;
        l->retry_at = rt_now_ms() + delay;
        l->next_retry = retrying;
        retrying = l;
    }
    if (l->head && !l->retry_at)
        make_ready(l);
    lane_maybe_free(l);
    pump();
}

static void start(lane_t *l)
{
    rt_wh_delivery_t *d = l->head;
    const rt_wh_endpoint_t *e = &rt_wh_eps[l->ep];
    long t = (long)(rt_wall_ms() / 1000);
    char hex[2 * EVP_MAX_MD_SIZE + 1], headers[512];
    rt_wh_sign(e, t, rt_str(d->body.base, d->body.len), hex);
    d->attempts++;
    snprintf(headers, sizeof(headers),
             "X-Rt-Signature: t=%ld,v1=%s\r\nX-Rt-Event-Id: %s\r\nX-Rt-Attempt: %d\r\nX-Rt-Sent-By: %s\r\n", t, hex, d->id,
             d->attempts, rt_presence_node());
    in_flight++;
    l->call = rt_httpc_post(&rt_workers[0], &e->target, rt_str(d->body.base, d->body.len), headers, rt_wh_set.timeout_ms,
                            on_answer, l);
}

static void pump(void)
{
    while (!stopping && ready_head && in_flight < rt_wh_set.max_in_flight) {
        lane_t *l = ready_head;
        ready_head = l->next_ready;
        if (ready_head == NULL)
            ready_tail = NULL;
        l->ready = 0;
        start(l);
    }
}

static void make_ready(lane_t *l)
{
    if (l->ready || l->call || l->retry_at || l->head == NULL)
        return;
    l->ready = 1;
    l->next_ready = NULL;
    if (ready_tail)
        ready_tail->next_ready = l;
    else
        ready_head = l;
    ready_tail = l;
}

static void drain(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    rt_wh_delivery_t *d = in_head;
    in_head = in_tail = NULL;
    drain_posted = 0;
    pthread_mutex_unlock(&lock);
    while (d) {
        rt_wh_delivery_t *next = d->next;
        d->next = NULL;
        char key[300];
        int n = snprintf(key, sizeof(key), "%d\x1f%s", d->ep, d->topic);
        lane_t *l = rt_map_get(&lanes, rt_str(key, (size_t)n));
        if (l == NULL) {
            l = rt_calloc(1, sizeof(*l));
            l->key = rt_strndup(rt_str(key, (size_t)n));
            l->ep = d->ep;
            rt_map_put(&lanes, rt_cstr(l->key), l);
        }
        if (l->tail)
            l->tail->next = d;
        else
            l->head = d;
        l->tail = d;
        make_ready(l);
        d = next;
    }
    pump();
}

void rt_wh_send_tick(void)
{
    uint64_t now = rt_now_ms();
    for (lane_t **p = &retrying; *p;) {
        lane_t *l = *p;
        if (l->retry_at > now) {
            p = &l->next_retry;
            continue;
        }
        *p = l->next_retry;
        l->retry_at = 0;
        make_ready(l);
    }
    pump();
}

void rt_wh_send_shutdown(void)
{
    stopping = 1;
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&lanes, e, &i)) != NULL;) {
        lane_t *l = e->value;
        if (l->call) {
            rt_httpc_cancel(l->call);
            l->call = NULL;
            in_flight--;
        }
    }
}

static void free_list(rt_wh_delivery_t *d)
{
    while (d) {
        rt_wh_delivery_t *next = d->next;
        if (d->settle)
            d->settle(d, -1);
        else
            rt_wh_delivery_free(d);
        d = next;
    }
}

void rt_wh_send_free(void)
{
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&lanes, e, &i)) != NULL;) {
        lane_t *l = e->value;
        free_list(l->head);
        free(l->key);
        free(l);
    }
    rt_map_free(&lanes);
    free_list(in_head);
    in_head = in_tail = NULL;
    ready_head = ready_tail = retrying = NULL;
}

void rt_wh_send_metrics(rt_buf_t *b)
{
    rt_buf_appendc(b, "# HELP rtbroker_webhook_deliveries_total Webhook deliveries answered 2xx, by endpoint (its index "
                      "in webhooks.endpoints).\n# TYPE rtbroker_webhook_deliveries_total counter\n");
    for (size_t i = 0; i < rt_wh_neps; i++)
        rt_buf_printf(b, "rtbroker_webhook_deliveries_total{endpoint=\"%zu\"} %lu\n", i, atomic_load(&m_delivered[i]));
    rt_buf_appendc(b, "# HELP rtbroker_webhook_failures_total Webhook deliveries given up after max_attempts.\n"
                      "# TYPE rtbroker_webhook_failures_total counter\n");
    for (size_t i = 0; i < rt_wh_neps; i++)
        rt_buf_printf(b, "rtbroker_webhook_failures_total{endpoint=\"%zu\"} %lu\n", i, atomic_load(&m_failed[i]));
    rt_buf_appendc(b, "# HELP rtbroker_webhook_retries_total Webhook attempts that failed and were retried later.\n"
                      "# TYPE rtbroker_webhook_retries_total counter\n");
    for (size_t i = 0; i < rt_wh_neps; i++)
        rt_buf_printf(b, "rtbroker_webhook_retries_total{endpoint=\"%zu\"} %lu\n", i, atomic_load(&m_retries[i]));
    rt_buf_printf(b,
                  "# HELP rtbroker_webhook_dropped_total Webhook deliveries dropped because the queue was full "
                  "(webhooks.max_queue).\n# TYPE rtbroker_webhook_dropped_total counter\n"
                  "rtbroker_webhook_dropped_total %lu\n"
                  "# HELP rtbroker_webhook_queue_depth Webhook deliveries held on this node (waiting, in flight or "
                  "between retries).\n# TYPE rtbroker_webhook_queue_depth gauge\nrtbroker_webhook_queue_depth %zu\n",
                  atomic_load(&m_dropped), atomic_load(&held));
    rt_buf_appendc(b, "# HELP rtbroker_webhook_delivery_seconds From the event to the receiver's 2xx.\n"
                      "# TYPE rtbroker_webhook_delivery_seconds histogram\n");
    unsigned long total = 0;
    for (size_t i = 0; i < rt_wh_neps; i++)
        total += atomic_load(&m_delivered[i]);
    for (size_t i = 0; i < NBUCKETS; i++)
        rt_buf_printf(b, "rtbroker_webhook_delivery_seconds_bucket{le=\"%g\"} %lu\n", bucket_s[i], atomic_load(&m_buckets[i]));
    rt_buf_printf(b,
                  "rtbroker_webhook_delivery_seconds_bucket{le=\"+Inf\"} %lu\nrtbroker_webhook_delivery_seconds_sum %.3f\n"
                  "rtbroker_webhook_delivery_seconds_count %lu\n",
                  total, atomic_load(&m_sum_ms) / 1e3, total);
}
