/*
 * Webhooks over NATS JetStream (bus: nats): the carrier that makes each event sent once in the cluster and survive
 * the death of the node that saw it. An event for an endpoint is published to the work-queue stream
 * <prefix>_webhooks on <prefix>_wh.<endpoint hash>.<partition> (the topic's hash picks one of NPART) with
 * Nats-Msg-Id = "<event id>@<endpoint hash>" (a repeat inside the stream's duplicate window is dropped). Every node
 * pulls from one shared durable consumer per endpoint and partition with MaxAckPending 1: one delivery of a partition
 * is out at a time in the whole cluster, which keeps every topic's order (at the cost of one round trip per event of
 * a partition; NPART of them run side by side). The node that pulled a message makes one attempt
 * (webhook_send.c) and then acks it (2xx), naks it with the backoff delay (any node retries it then), or terminates
 * it after max_attempts deliveries. A node that dies holding a message: the server redelivers it after the ack wait.
 * Blocking NATS calls run on this file's threads (one per endpoint); bus_nats.c only hands over its connection.
 */
#include <nats/nats.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "map.h"
#include "webhook.h"
#include "webhook_nats.h"

#define NPART 4 /* partitions per endpoint: deliveries out at once per endpoint, cluster-wide */

typedef struct puller {
    pthread_t thread;
    int ep, started;
    char hash[17], subject[200], durable[40]; /* hash: the endpoint's */
    natsSubscription *sub;
    pthread_mutex_t lock;
    pthread_cond_t settled_cv;
    int busy; /* a pulled message is with the sender */
} puller_t;

static struct {
    natsConnection *nc;
    jsCtx *js;  /* our own: the bus's context has its own async ack handler */
    char stream[160], prefix[140];
    puller_t pullers[8 * NPART]; /* endpoint i's partition k: [i * NPART + k] */
    atomic_int stopping;
    atomic_ulong published, pub_failed, naks, terms;
    uint64_t last_fail_log;
} wn;

void rt_wh_nats_attach(natsConnection *nc) { wn.nc = nc; }

static puller_t *puller_of(int ep, rt_str_t topic) { return &wn.pullers[ep * NPART + (int)(rt_hash_stable(topic) % NPART)]; }

static void on_pub_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js, (void)pa, (void)closure;
    natsMsg_Destroy(m); /* ours once the handler runs */
    if (pae == NULL) {
        atomic_fetch_add(&wn.published, 1);
        return;
    }
    atomic_fetch_add(&wn.pub_failed, 1);
    uint64_t now = rt_now_ms();
    if (now - wn.last_fail_log >= 10000) { /* a racy rate limit is good enough for a log line */
        wn.last_fail_log = now;
        rt_log(RT_LOG_WARN, "webhooks: JetStream refused an event (%s, error %d%s%s): it is lost; is the stream %s full "
                            "(webhooks.max_queue) or NATS unreachable?",
               natsStatus_GetText(pae->Err), (int)pae->ErrCode, pae->ErrText ? ": " : "", pae->ErrText ? pae->ErrText : "",
               wn.stream);
    }
}

int rt_wh_nats_publish(const rt_wh_endpoint_t *e, int ep, rt_str_t topic, const char *id, rt_str_t body)
{
    (void)e;
    puller_t *p = puller_of(ep, topic);
    natsMsg *m = NULL;
    char topicz[260], msgid[200];
    if (wn.js == NULL || topic.len >= sizeof(topicz) ||
        natsMsg_Create(&m, p->subject, NULL, body.base, (int)body.len) != NATS_OK) {
        atomic_fetch_add(&wn.pub_failed, 1);
        return -1;
    }
    memcpy(topicz, topic.base, topic.len);
    topicz[topic.len] = '\0';
    snprintf(msgid, sizeof(msgid), "%s@%s", id, p->hash);
    natsMsgHeader_Set(m, "Rt-Topic", topicz);
    natsMsgHeader_Set(m, "Rt-Event-Id", id);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MsgId = msgid;
    if (js_PublishMsgAsync(wn.js, &m, &po) != NATS_OK) {
        natsMsg_Destroy(m);
        atomic_fetch_add(&wn.pub_failed, 1);
        return -1;
    }
    return 0;
}

/* Runs on worker 0 once the sender's one attempt is over (delivered: 1, failed: 0, dropped unsent: -1). */
static void settle(rt_wh_delivery_t *d, int delivered)
{
    natsMsg *m = d->carrier;
    puller_t *p = puller_of(d->ep, rt_cstr(d->topic));
    const rt_wh_endpoint_t *e = &rt_wh_eps[d->ep];
    if (delivered > 0) {
        natsMsg_Ack(m, NULL);
    } else if (delivered < 0) {
        natsMsg_Nak(m, NULL); /* another node (or this one, later) takes it now */
    } else if (d->attempts >= e->max_attempts) {
        natsMsg_Term(m, NULL);
        atomic_fetch_add(&wn.terms, 1);
        rt_wh_count(d->ep, 1);
        rt_log(RT_LOG_WARN, "webhooks: gave up on event %s (topic %s) for %s after %d attempts", d->id, d->topic, e->url,
               d->attempts);
    } else {
        uint64_t delay = rt_wh_set.retry_ms;
        for (int i = 1; i < d->attempts && delay < rt_wh_set.retry_max_ms; i++)
            delay *= 2;
        if (delay > rt_wh_set.retry_max_ms)
            delay = rt_wh_set.retry_max_ms;
        natsMsg_NakWithDelay(m, (int64_t)delay, NULL); /* milliseconds */
        atomic_fetch_add(&wn.naks, 1);
        rt_wh_count(d->ep, 0);
    }
    natsMsg_Destroy(m);
    d->carrier = NULL;
    rt_wh_delivery_free(d);
    pthread_mutex_lock(&p->lock);
    p->busy = 0;
    pthread_cond_signal(&p->settled_cv);
    pthread_mutex_unlock(&p->lock);
}

static int setup(puller_t *p)
{
    jsErrCode jerr = 0;
    const char *subjects[1];
    char all[200];
    snprintf(all, sizeof(all), "%s_wh.>", wn.prefix);
    subjects[0] = all;
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = wn.stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Retention = js_WorkQueuePolicy;
    sc.Storage = js_FileStorage;
    sc.MaxMsgs = (int64_t)rt_wh_set.max_queue;
    sc.Discard = js_DiscardNew; /* full: new events are refused (counted and logged), the queued ones kept */
    sc.Replicas = rt_cfg_int("nats.replicas");
    jsStreamInfo *si = NULL;
    natsStatus s = js_AddStream(&si, wn.js, &sc, NULL, &jerr);
    if (s != NATS_OK)
        s = js_UpdateStream(&si, wn.js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK)
        return -1;
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = p->durable;
    cc.FilterSubject = p->subject;
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = (int64_t)(2 * rt_wh_set.timeout_ms + 1000) * 1000000; /* then a dead node's message goes to another */
    cc.MaxAckPending = 1;                                             /* order: one out at a time, cluster-wide */
    cc.DeliverPolicy = js_DeliverAll;
    jsConsumerInfo *ci = NULL;
    s = js_AddConsumer(&ci, wn.js, wn.stream, &cc, NULL, &jerr);
    if (s != NATS_OK)
        s = js_UpdateConsumer(&ci, wn.js, wn.stream, &cc, NULL, &jerr);
    jsConsumerInfo_Destroy(ci);
    if (s != NATS_OK)
        return -1;
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = wn.stream;
    so.Consumer = p->durable;
    return js_PullSubscribe(&p->sub, wn.js, p->subject, p->durable, NULL, &so, &jerr) == NATS_OK ? 0 : -1;
}

static void *pull_main(void *arg)
{
    puller_t *p = arg;
    while (!atomic_load(&wn.stopping)) {
        if (p->sub == NULL && setup(p) != 0) {
            usleep(500 * 1000);
            continue;
        }
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus s = natsSubscription_Fetch(&list, p->sub, 1, 1000, &jerr);
        if (s != NATS_OK || list.Count == 0) {
            natsMsgList_Destroy(&list);
            if (s != NATS_TIMEOUT)
                usleep(200 * 1000); /* disconnected: do not spin */
            continue;
        }
        natsMsg *m = list.Msgs[0];
        list.Msgs[0] = NULL;
        natsMsgList_Destroy(&list);
        jsMsgMetaData *meta = NULL;
        const char *topic = NULL, *id = NULL;
        natsMsgHeader_Get(m, "Rt-Topic", &topic);
        natsMsgHeader_Get(m, "Rt-Event-Id", &id);
        if (natsMsg_GetMetaData(&meta, m) != NATS_OK || topic == NULL || id == NULL) {
            natsMsg_Term(m, NULL); /* not ours: nothing to send */
            natsMsg_Destroy(m);
            jsMsgMetaData_Destroy(meta);
            continue;
        }
        rt_wh_delivery_t *d = rt_calloc(1, sizeof(*d));
        d->ep = p->ep;
        d->topic = rt_strndup(rt_cstr(topic));
        d->id = rt_strndup(rt_cstr(id));
        rt_buf_append(&d->body, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
        d->attempts = (int)meta->NumDelivered - 1; /* the sender's attempt is the next one */
        uint64_t age = rt_ms_since((uint64_t)(meta->Timestamp / 1000000), rt_wall_ms());
        d->t0 = rt_now_ms() - (age < rt_now_ms() ? age : 0);
        d->settle = settle;
        d->carrier = m;
        jsMsgMetaData_Destroy(meta);
        pthread_mutex_lock(&p->lock);
        p->busy = 1;
        pthread_mutex_unlock(&p->lock);
        rt_wh_submit(d); /* settle runs later on worker 0, or now when the queue is full */
        pthread_mutex_lock(&p->lock);
        while (p->busy && !atomic_load(&wn.stopping))
            pthread_cond_wait(&p->settled_cv, &p->lock);
        pthread_mutex_unlock(&p->lock);
    }
    return NULL;
}

int rt_wh_nats_start(char *err, size_t errlen)
{
    if (wn.nc == NULL) {
        snprintf(err, errlen, "webhooks: the NATS bus gave no connection");
        return -1;
    }
    snprintf(wn.prefix, sizeof(wn.prefix), "%s", rt_cfg_str("nats.subject_prefix"));
    snprintf(wn.stream, sizeof(wn.stream), "%s_webhooks", wn.prefix);
    for (char *c = wn.stream; *c; c++)
        *c = *c == '.' ? '_' : *c;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.AckHandler = on_pub_ack;
    jo.PublishAsync.MaxPending = (int64_t)rt_wh_set.max_queue;
    if (natsConnection_JetStream(&wn.js, wn.nc, &jo) != NATS_OK) {
        snprintf(err, errlen, "webhooks: cannot open a JetStream context");
        return -1;
    }
    if (rt_webhook_wants(RT_WH_OCCUPIED) || rt_webhook_wants(RT_WH_VACATED))
        rt_wh_occ_nats_start(wn.js, wn.prefix);
    for (size_t n = 0; n < rt_wh_neps * NPART; n++) {
        puller_t *p = &wn.pullers[n];
        size_t i = n / NPART;
        unsigned char h[SHA256_DIGEST_LENGTH];
        SHA256((const unsigned char *)rt_wh_eps[i].url, strlen(rt_wh_eps[i].url), h);
        for (int k = 0; k < 8; k++)
            snprintf(p->hash + 2 * k, 3, "%02x", h[k]);
        snprintf(p->subject, sizeof(p->subject), "%s_wh.%s.%zu", wn.prefix, p->hash, n % NPART);
        snprintf(p->durable, sizeof(p->durable), "wh_%s_%zu", p->hash, n % NPART);
        p->ep = (int)i;
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->settled_cv, NULL);
        p->started = pthread_create(&p->thread, NULL, pull_main, p) == 0;
    }
    return 0;
}

void rt_wh_nats_stop(void)
{
    rt_wh_occ_nats_stop(); /* first: it still writes this node's last deletes */
    atomic_store(&wn.stopping, 1);
    for (size_t i = 0; i < rt_wh_neps * NPART; i++) {
        puller_t *p = &wn.pullers[i];
        pthread_mutex_lock(&p->lock);
        pthread_cond_signal(&p->settled_cv);
        pthread_mutex_unlock(&p->lock);
        if (p->started)
            pthread_join(p->thread, NULL);
        p->started = 0;
    }
}

void rt_wh_nats_release(void)
{
    for (size_t i = 0; i < rt_wh_neps * NPART; i++) {
        natsSubscription_Destroy(wn.pullers[i].sub); /* not unsubscribed: the durable consumer stays for the cluster */
        wn.pullers[i].sub = NULL;
    }
    jsCtx_Destroy(wn.js);
    wn.js = NULL;
}

void rt_wh_nats_metrics(rt_buf_t *b)
{
    rt_buf_printf(b,
                  "# HELP rtbroker_webhook_nats_published_total Webhook deliveries stored in the JetStream work queue.\n"
                  "# TYPE rtbroker_webhook_nats_published_total counter\nrtbroker_webhook_nats_published_total %lu\n"
                  "# HELP rtbroker_webhook_nats_refused_total Webhook deliveries JetStream did not store (lost).\n"
                  "# TYPE rtbroker_webhook_nats_refused_total counter\nrtbroker_webhook_nats_refused_total %lu\n"
                  "# HELP rtbroker_webhook_nats_naks_total Failed attempts handed back to the work queue for a retry.\n"
                  "# TYPE rtbroker_webhook_nats_naks_total counter\nrtbroker_webhook_nats_naks_total %lu\n",
                  atomic_load(&wn.published), atomic_load(&wn.pub_failed), atomic_load(&wn.naks));
}
