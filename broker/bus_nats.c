/*
 * The NATS JetStream bus: the connection, the stream and publishing. Publishes go to the
 * stream `<prefix>.>` (asynchronously; the worker learns the stream sequence from the ack).
 * The stream re-publishes every stored message on core NATS (`<prefix>_live.>`), which
 * bus_nats_live.c follows only for the topics this node's clients want; history is read
 * from JetStream on demand (bus_nats_fetch.c). Nothing of the stream is loaded at start.
 * nats.c's threads never touch h2o: completions go to workers as posted tasks. A bus
 * thread does the blocking work: connecting, creating or checking the stream, and
 * failing publishes whose ack never came.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus_nats.h"
#include "config.h"
#include "hub.h"
#include "namespace.h"
#include "nats_decode.h"
#include "presence_nats.h"
#include "webhook_nats.h"

struct pending {
    rt_worker_t *worker;
    rt_publish_cb cb;
    void *ctx;
    uint64_t started_ms;
    natsMsg *key; /* the published message, as the ack handler sees it */
    int err;
    uint64_t seq;
    char epoch[16];
};


static rt_str_t key_of(natsMsg **m) { return rt_str((const char *)m, sizeof(*m)); }

static void on_connected(natsConnection *nc, void *closure)
{
    natsbus_t *nb = closure;
    (void)nc;
    pthread_mutex_lock(&nb->lock);
    nb->connected = 1;
    nb->stream_ok = 0; /* checked again first: the server may have come back without it */
    pthread_cond_signal(&nb->wake);
    pthread_mutex_unlock(&nb->lock);
    rt_log(RT_LOG_INFO, "nats: connected");
}

static void complete(void *arg);

static void on_disconnected(natsConnection *nc, void *closure)
{
    natsbus_t *nb = closure;
    (void)nc;
    pthread_mutex_lock(&nb->lock);
    int was = nb->connected;
    nb->connected = 0;
    /* what NATS pushed into the dead connection is lost; its consumer may resume after it: deliver_msg notices */
    /* publishes in flight stay pending: nats.c sends what it had buffered again after reconnecting, and their
     * acks answer them; only nats.publish_timeout turns them into 503 */
    pthread_mutex_unlock(&nb->lock);
    rt_nats_live_lost(nb); /* re-published messages are at most once: what we miss now is fetched after */
    if (was)
        rt_log(RT_LOG_WARN, "nats: disconnected; publishes get 503 until it is back");
}

static void epoch_of(const char *stream, int64_t created, char out[16])
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
    char buf[200];
    snprintf(buf, sizeof(buf), "%s/%lld", stream, (long long)created);
    uint64_t h = rt_hash_stable(rt_cstr(buf));
    for (int i = 0; i < 8; i++, h >>= 5)
        out[i] = alphabet[h & 31];
    out[8] = '\0';
}

/* Creates the stream or checks the one there; sets the epoch; *last gets the stream's last SEQ.
 * 0, or -1 with err naming the setting. */
static int setup_stream(natsbus_t *nb, uint64_t *last_out, char *err, size_t errlen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    int64_t max_msgs = rt_cfg_int("history.max_messages"), max_age_ms = rt_cfg_int("history.max_age");
    rt_ns_stream_limits(&max_msgs, &max_age_ms); /* room for the largest namespace (namespace.c, api_cluster.c) */
    int64_t max_age_ns = max_age_ms * 1000000LL,
            dup_ns = rt_cfg_int("publish.dedup_window") * 1000000LL, replicas = rt_cfg_int("nats.replicas");
    char subject[140], live[150];
    snprintf(subject, sizeof(subject), "%s.>", nb->prefix);
    snprintf(live, sizeof(live), "%s.>", nb->live);
    jsRePublish rp; /* every stored message on core NATS too, with its SEQ and its subject's previous SEQ */
    jsRePublish_Init(&rp);
    rp.Source = subject;
    rp.Destination = live;
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[] = {subject};
    cfg.Name = nb->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.MaxMsgsPerSubject = max_msgs;
    cfg.MaxAge = max_age_ns;
    cfg.Duplicates = dup_ns ? dup_ns : 1000000; /* 0 would mean the server's default (2 min) */
    cfg.Replicas = replicas;
    cfg.RePublish = &rp;
    cfg.AllowDirect = true;
    natsStatus s = js_GetStreamInfo(&si, nb->js, nb->stream, NULL, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
        s = js_AddStream(&si, nb->js, &cfg, NULL, &jerr);
        if (s != NATS_OK) {
            snprintf(err, errlen, "nats: cannot create stream %s: %s (JetStream error %d)", nb->stream, natsStatus_GetText(s),
                     (int)jerr);
            return -1;
        }
        rt_log(RT_LOG_INFO, "nats: created stream %s on %s", nb->stream, subject);
    } else if (s != NATS_OK) {
        snprintf(err, errlen, "nats: cannot read stream %s: %s (JetStream error %d; is JetStream enabled: nats-server -js?)",
                 nb->stream, natsStatus_GetText(s), (int)jerr);
        return -1;
    } else {
        jsStreamConfig *c = si->Config;
        const char *conflict = NULL;
        char detail[200];
        int has_subject = 0;
        for (int i = 0; i < c->SubjectsLen; i++)
            has_subject |= strcmp(c->Subjects[i], subject) == 0;
        if (!has_subject)
            conflict = "subjects", snprintf(detail, sizeof(detail), "it does not capture %s", subject);
        else if (c->MaxMsgsPerSubject != max_msgs)
            conflict = "history.max_messages", snprintf(detail, sizeof(detail), "its max_msgs_per_subject is %lld, the config says %lld",
                                                        (long long)c->MaxMsgsPerSubject, (long long)max_msgs);
        else if (c->MaxAge != max_age_ns)
            conflict = "history.max_age", snprintf(detail, sizeof(detail), "its max_age is %llds, the config says %llds",
                                                   (long long)(c->MaxAge / 1000000000LL), (long long)(max_age_ns / 1000000000LL));
        else if (dup_ns && c->Duplicates != dup_ns)
            conflict = "publish.dedup_window", snprintf(detail, sizeof(detail), "its duplicate window is %llds, the config says %llds",
                                                        (long long)(c->Duplicates / 1000000000LL), (long long)(dup_ns / 1000000000LL));
        else if (c->Replicas != replicas)
            conflict = "nats.replicas", snprintf(detail, sizeof(detail), "it has %lld replicas, the config says %lld",
                                                 (long long)c->Replicas, (long long)replicas);
        if (conflict) {
            snprintf(err, errlen, "nats: stream %s exists with other settings: %s (%s); change the config or the stream", nb->stream,
                     detail, conflict);
            jsStreamInfo_Destroy(si);
            return -1;
        }
        int republishes = c->RePublish && c->RePublish->Destination && strcmp(c->RePublish->Destination, live) == 0 &&
                          !c->RePublish->HeadersOnly;
        if (!republishes || !c->AllowDirect) { /* a stream made by an older broker or by hand: add what we need */
            jsRePublish *had = c->RePublish;
            int direct = c->AllowDirect;
            jsStreamInfo *updated = NULL;
            c->RePublish = &rp;
            c->AllowDirect = true;
            s = js_UpdateStream(&updated, nb->js, c, NULL, &jerr);
            const char *why = s == NATS_OK ? NULL : nats_GetLastError(NULL);
            c->RePublish = had, c->AllowDirect = direct; /* si owns what it had */
            if (s != NATS_OK) {
                snprintf(err, errlen,
                         "nats: stream %s %s, which this broker needs (live delivery, reads of history), and nats-server "
                         "refused to add it (%s; JetStream error %d; nats-server 2.9 cannot add RePublish to a stream): "
                         "delete the stream to let the broker create it, which drops its retained messages "
                         "(nats stream rm %s, or tests/tools/nats_client delstream URL %s), or create it yourself with "
                         "RePublish %s -> %s and AllowDirect",
                         nb->stream, !republishes ? "does not re-publish its messages to core NATS" : "does not allow direct gets",
                         why && *why ? why : natsStatus_GetText(s), (int)jerr, nb->stream, nb->stream, subject, live);
                jsStreamInfo_Destroy(si);
                return -1;
            }
            rt_log(RT_LOG_WARN, "nats: stream %s updated: it now %s", nb->stream,
                   !republishes ? "re-publishes its messages to core NATS and allows direct gets" : "allows direct gets");
            jsStreamInfo_Destroy(si);
            si = updated;
        }
    }
    char epoch[16];
    epoch_of(nb->stream, si->Created, epoch);
    uint64_t last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    pthread_mutex_lock(&nb->lock);
    int changed = strcmp(epoch, nb->epoch) != 0, had = nb->epoch[0] != '\0';
    char old[16];
    memcpy(old, nb->epoch, sizeof(old));
    if (changed) {
        if (had)
            rt_log(RT_LOG_WARN, "nats: stream %s was recreated: new epoch %s (subscribers get a gap notice)",
                   nb->stream, epoch);
        memcpy(nb->epoch, epoch, sizeof(epoch));
        nb->known_seq = 0;
        nb->epoch_seq = last;
        if (had) {
            rt_nats_live_reset(nb);
            rt_hub_reset_all(rt_cstr(old)); /* under the lock: the workers reset before the new stream's messages */
        }
    }
    if (last > nb->known_seq)
        nb->known_seq = last; /* what a subscribe "from now" starts after while NATS is away */
    *last_out = last;
    nb->stream_ok = 1;
    pthread_mutex_unlock(&nb->lock);
    return 0;
}

rt_msg_t *rt_nats_msg(natsbus_t *nb, natsMsg *m, uint64_t seq, const char *epoch)
{
    /* re-published ones come on <prefix>_live.<topic>, fetched ones on the stored <prefix>.<topic> */
    const char *subject = natsMsg_GetSubject(m);
    size_t llen = strlen(nb->live);
    int live = subject && strncmp(subject, nb->live, llen) == 0 && subject[llen] == '.';
    rt_msg_t *msg = rt_nats_decode(m, nb->prefix, live ? "_live." : ".");
    if (msg == NULL)
        return NULL;
    rt_msg_set_id(msg, rt_cstr(epoch), seq);
    return msg;
}

void rt_nats_wait(natsbus_t *nb, pthread_cond_t *cv, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(cv, &nb->lock, &ts);
}

void rt_nats_join(natsbus_t *nb, pthread_cond_t *cv, pthread_t thread)
{
    pthread_mutex_lock(&nb->lock);
    nb->stopping = 1;
    pthread_cond_signal(cv);
    pthread_mutex_unlock(&nb->lock);
    pthread_join(thread, NULL);
}

int rt_nats_stream_state(natsbus_t *nb, uint64_t *first, uint64_t *last)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, nb->js, nb->stream, NULL, &jerr) != NATS_OK)
        return RT_EUNAVAILABLE;
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return RT_OK;
}

static void complete(void *arg)
{
    pending_t *p = arg;
    char id[RT_ID_MAX + 1];
    size_t n = p->err == RT_OK ? rt_id_format(id, rt_cstr(p->epoch), p->seq) : 0;
    p->cb(p->ctx, p->err, rt_str(id, n));
    free(p);
}

/* Fails publishes whose ack has not come within nats.publish_timeout (nothing is known of them: 503). */
static void expire_pending(natsbus_t *nb)
{
    uint64_t limit = (uint64_t)rt_cfg_int("nats.publish_timeout");
    pthread_mutex_lock(&nb->lock);
    uint64_t now = rt_now_ms(); /* a publish added after this reading is younger: rt_ms_since gives 0 */
    size_t b = 0;
    rt_map_entry_t *e = rt_map_next(&nb->pending, NULL, &b);
    while (e) {
        rt_map_entry_t *next = rt_map_next(&nb->pending, e, &b);
        pending_t *p = e->value;
        if (rt_ms_since(p->started_ms, now) > limit) {
            rt_map_del(&nb->pending, key_of(&p->key));
            p->err = RT_EUNKNOWN; /* it was handed to NATS: it may yet be stored */
            rt_hub_post(p->worker, complete, p);
        }
        e = next;
    }
    pthread_mutex_unlock(&nb->lock);
}

static void *bus_thread(void *arg)
{
    natsbus_t *nb = arg;
    for (;;) {
        pthread_mutex_lock(&nb->lock);
        if (!nb->stopping && nb->nheld == 0 && !(nb->connected && !nb->stream_ok))
            rt_nats_wait(nb, &nb->wake, 1000);
        int stopping = nb->stopping, check = nb->connected && (!nb->stream_ok || nb->nheld > 0);
        pthread_mutex_unlock(&nb->lock);
        if (stopping)
            return NULL;
        expire_pending(nb);
        pthread_mutex_lock(&nb->lock);
        check |= nb->connected && ++nb->checks % 5 == 0;
        pthread_mutex_unlock(&nb->lock);
        if (!check)
            continue;
        char err[512];
        uint64_t last;
        if (setup_stream(nb, &last, err, sizeof(err)) != 0) { /* recreates a deleted stream; notices a new epoch */
            rt_log(RT_LOG_ERROR, "%s", err);
            struct timespec ts = {0, 200 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        pthread_mutex_lock(&nb->lock);
        for (size_t i = 0; i < nb->nheld; i++) { /* their ids take the epoch just checked */
            memcpy(nb->held[i]->epoch, nb->epoch, sizeof(nb->epoch));
            rt_hub_post(nb->held[i]->worker, complete, nb->held[i]);
        }
        nb->nheld = 0;
        pthread_mutex_unlock(&nb->lock);
    }
}

static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure);

static int nb_start(rt_bus_t *bus, char *err, size_t errlen)
{
    natsbus_t *nb = (natsbus_t *)bus;
    const rt_cfg_value_t *urls = rt_cfg("nats.url");
    snprintf(nb->prefix, sizeof(nb->prefix), "%s", rt_cfg_str("nats.subject_prefix"));
    if (rt_topic_check(rt_cstr(nb->prefix), 0, NULL) != RT_OK) {
        snprintf(err, errlen, "config: nats.subject_prefix: \"%s\" is not a subject prefix (segments of A-Z a-z 0-9 _ -)", nb->prefix);
        return -1;
    }
    if (rt_cfg_str("nats.stream")[0]) {
        snprintf(nb->stream, sizeof(nb->stream), "%s", rt_cfg_str("nats.stream"));
    } else {
        size_t i = 0;
        for (; nb->prefix[i] && i < sizeof(nb->stream) - 1; i++) {
            char c = nb->prefix[i];
            nb->stream[i] = (char)(c == '.' ? '_' : (c >= 'a' && c <= 'z') ? c - 32 : c);
        }
        nb->stream[i] = '\0';
    }
    snprintf(nb->live, sizeof(nb->live), "%s_live", nb->prefix);
    rt_random_token(nb->node, 8);

    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetServers(o, (const char **)urls->list, (int)urls->nlist);
    natsOptions_SetName(o, "rtbroker");
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetReconnectWait(o, 250);
    natsOptions_SetReconnectBufSize(o, 1); /* no buffering while disconnected: such publishes fail (503) at once */
    natsOptions_SetRetryOnFailedConnect(o, true, on_connected, nb);
    natsOptions_SetDisconnectedCB(o, on_disconnected, nb);
    natsOptions_SetReconnectedCB(o, on_connected, nb);
    /* one delivery thread for every subscription: re-published messages of different topics reach us in SEQ order */
    natsOptions_UseGlobalMessageDelivery(o, true);
    if (rt_cfg_str("nats.token")[0])
        natsOptions_SetToken(o, rt_cfg_str("nats.token"));
    if (rt_cfg_str("nats.user")[0])
        natsOptions_SetUserInfo(o, rt_cfg_str("nats.user"), rt_cfg_str("nats.password"));
    if (rt_cfg_str("nats.creds")[0])
        natsOptions_SetUserCredentialsFromFiles(o, rt_cfg_str("nats.creds"), NULL);
    if (rt_cfg_str("nats.tls_ca")[0]) {
        natsOptions_SetSecure(o, true);
        if (natsOptions_LoadCATrustedCertificates(o, rt_cfg_str("nats.tls_ca")) != NATS_OK) {
            snprintf(err, errlen, "config: nats.tls_ca: cannot load %s", rt_cfg_str("nats.tls_ca"));
            return -1;
        }
    }
    if (rt_cfg_str("nats.tls_cert")[0] &&
        natsOptions_LoadCertificatesChain(o, rt_cfg_str("nats.tls_cert"), rt_cfg_str("nats.tls_key")) != NATS_OK) {
        snprintf(err, errlen, "config: nats.tls_cert / nats.tls_key: cannot load the certificate and key");
        return -1;
    }
    nb->opts = o;
    natsStatus s = natsConnection_Connect(&nb->nc, o);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        snprintf(err, errlen, "nats: cannot connect to %s: %s", urls->list[0], natsStatus_GetText(s));
        return -1;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = nb;
    jo.PublishAsync.MaxPending = 65536;
    natsConnection_JetStream(&nb->js, nb->nc, &jo);
    if (s == NATS_OK) {
        nb->connected = 1;
        /* with NATS up at start, a stream that conflicts with the config stops the broker */
        uint64_t last;
        if (setup_stream(nb, &last, err, errlen) != 0)
            return -1;
    } else {
        rt_log(RT_LOG_WARN, "nats: %s is not reachable yet; /readyz is 503 and publishes get 503 until it is", urls->list[0]);
    }
    pthread_create(&nb->thread, NULL, bus_thread, nb);
    rt_nats_live_start(nb);
    rt_nats_fetch_start(nb);
    rt_presence_nats_start(nb->nc, nb->js, nb->stream);
    rt_wh_nats_attach(nb->nc); /* webhook_nats.c */
    return 0;
}

static void nb_stop(rt_bus_t *bus)
{
    natsbus_t *nb = (natsbus_t *)bus;
    rt_nats_join(nb, &nb->wake, nb->thread);
    rt_presence_nats_stop();
    /* close first: a JetStream request in flight (a fetch) would wait out its timeout when NATS is gone */
    natsConnection_Close(nb->nc);
    rt_nats_fetch_stop(nb);
    rt_nats_live_stop(nb);
    rt_presence_nats_release();
    jsCtx_Destroy(nb->js);
    natsConnection_Destroy(nb->nc);
    natsOptions_Destroy(nb->opts);
}

static void on_ack(jsCtx *js, natsMsg *m, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    natsbus_t *nb = closure;
    (void)js;
    pthread_mutex_lock(&nb->lock);
    pending_t *p = rt_map_del(&nb->pending, key_of(&m));
    int hold = p && pa && pa->Sequence <= nb->known_seq && !pa->Duplicate;
    if (pa && !hold && pa->Sequence > nb->known_seq)
        nb->known_seq = pa->Sequence;
    if (p && pa) {
        nb->pub_count++;
        nb->pub_latency_us += rt_ms_since(p->started_ms, rt_now_ms()) * 1000;
        memcpy(p->epoch, nb->epoch, sizeof(p->epoch));
        p->err = RT_OK;
        p->seq = pa->Sequence;
    }
    if (hold) { /* a SEQ seen before: the stream was recreated; the id waits for the new epoch */
        nb->held = rt_realloc(nb->held, (nb->nheld + 1) * sizeof(*nb->held));
        nb->held[nb->nheld++] = p;
        pthread_cond_signal(&nb->wake);
    }
    pthread_mutex_unlock(&nb->lock);
    natsMsg_Destroy(m);
    if (p == NULL || hold)
        return; /* already failed by the timeout, or held */
    if (!pa) { /* a timeout or a lost connection says nothing of whether the stream has it */
        p->err = pae && (pae->ErrCode || pae->Err == NATS_NO_RESPONDERS) ? RT_EUNAVAILABLE : RT_EUNKNOWN;
        rt_log(RT_LOG_WARN, "nats: publish refused: %s", pae && pae->ErrText ? pae->ErrText : "no answer");
    }
    rt_hub_post(p->worker, complete, p);
}

static void nb_publish(rt_bus_t *bus, rt_msg_t *msg, rt_str_t idem_key, rt_publish_cb cb, void *ctx)
{
    natsbus_t *nb = (natsbus_t *)bus;
    char subject[RT_TOPIC_MAX + 140], idem[RT_TOPIC_MAX + 130];
    pthread_mutex_lock(&nb->lock);
    int up = nb->connected && nb->stream_ok;
    pthread_mutex_unlock(&nb->lock);
    natsMsg *m = NULL;
    snprintf(subject, sizeof(subject), "%s.%.*s", nb->prefix, (int)msg->topic.len, msg->topic.base);
    if (!up || natsMsg_Create(&m, subject, NULL, msg->data.base, (int)msg->data.len) != NATS_OK) {
        rt_msg_unref(msg);
        cb(ctx, RT_EUNAVAILABLE, rt_str(NULL, 0));
        return;
    }
    char ev[80], ct[256];
    if (msg->event.len) {
        snprintf(ev, sizeof(ev), "%.*s", (int)msg->event.len, msg->event.base);
        natsMsgHeader_Set(m, "Rt-Event", ev);
    }
    if (msg->content_type.len) {
        snprintf(ct, sizeof(ct), "%.*s", (int)msg->content_type.len, msg->content_type.base);
        natsMsgHeader_Set(m, "Content-Type", ct);
    }
    if (idem_key.len) { /* JetStream de-duplicates per stream: the key is per topic */
        snprintf(idem, sizeof(idem), "%.*s:%.*s", (int)msg->topic.len, msg->topic.base, (int)idem_key.len, idem_key.base);
        natsMsgHeader_Set(m, "Nats-Msg-Id", idem);
    }
    rt_msg_unref(msg);
    pending_t *p = rt_calloc(1, sizeof(*p));
    p->worker = rt_current_worker;
    p->cb = cb, p->ctx = ctx;
    p->started_ms = rt_now_ms();
    p->key = m;
    pthread_mutex_lock(&nb->lock);
    rt_map_put(&nb->pending, key_of(&p->key), p);
    pthread_mutex_unlock(&nb->lock);
    natsMsg *send = m;
    if (js_PublishMsgAsync(nb->js, &send, NULL) != NATS_OK) {
        pthread_mutex_lock(&nb->lock);
        pending_t *q = rt_map_del(&nb->pending, key_of(&p->key));
        pthread_mutex_unlock(&nb->lock);
        if (q) { /* not handed to nats.c: fail it here */
            natsMsg_Destroy(send);
            free(q);
            cb(ctx, RT_EUNAVAILABLE, rt_str(NULL, 0));
        }
    }
}

/* Ephemeral messages travel on core NATS, on `<prefix>_eph.<topic>`, outside the stream's `<prefix>.>`. */
static int nb_publish_ephemeral(rt_bus_t *bus, rt_msg_t *msg)
{
    natsbus_t *nb = (natsbus_t *)bus;
    char subject[RT_TOPIC_MAX + 140], ev[80], ct[256];
    snprintf(subject, sizeof(subject), "%s_eph.%.*s", nb->prefix, (int)msg->topic.len, msg->topic.base);
    pthread_mutex_lock(&nb->lock);
    int up = nb->connected;
    pthread_mutex_unlock(&nb->lock);
    natsMsg *m = NULL;
    int err = RT_EUNAVAILABLE;
    if (up && natsMsg_Create(&m, subject, NULL, msg->data.base, (int)msg->data.len) == NATS_OK) {
        if (msg->event.len) {
            snprintf(ev, sizeof(ev), "%.*s", (int)msg->event.len, msg->event.base);
            natsMsgHeader_Set(m, "Rt-Event", ev);
        }
        if (msg->content_type.len) {
            snprintf(ct, sizeof(ct), "%.*s", (int)msg->content_type.len, msg->content_type.base);
            natsMsgHeader_Set(m, "Content-Type", ct);
        }
        char id[48]; /* a node whose patterns overlap gets it once per pattern: the id tells the copies */
        pthread_mutex_lock(&nb->lock);
        snprintf(id, sizeof(id), "%s.%llu", nb->node, (unsigned long long)++nb->eph_sent);
        pthread_mutex_unlock(&nb->lock);
        natsMsgHeader_Set(m, "Rt-Eph-Id", id);
        err = natsConnection_PublishMsg(nb->nc, m) == NATS_OK ? RT_OK : RT_EUNAVAILABLE;
        natsMsg_Destroy(m);
    }
    rt_msg_unref(msg);
    return err;
}

/* Whether this ephemeral message was seen already (the same message through another of our patterns). */
static int eph_seen(natsbus_t *nb, natsMsg *m)
{
    const char *id = NULL;
    if (natsMsgHeader_Get(m, "Rt-Eph-Id", &id) != NATS_OK || id == NULL)
        return 0;
    uint64_t h = rt_hash_stable(rt_cstr(id)) | 1;
    pthread_mutex_lock(&nb->lock);
    int seen = 0;
    for (size_t i = 0; i < sizeof(nb->eph_recent) / sizeof(nb->eph_recent[0]) && !seen; i++)
        seen = nb->eph_recent[i] == h;
    if (!seen)
        nb->eph_recent[nb->eph_next++ % (sizeof(nb->eph_recent) / sizeof(nb->eph_recent[0]))] = h;
    pthread_mutex_unlock(&nb->lock);
    return seen;
}

/* An ephemeral message from core NATS (any node, this one included), on a subscription of our interest. */
void rt_nats_on_ephemeral(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    natsbus_t *nb = closure;
    (void)nc, (void)sub;
    if (eph_seen(nb, m)) {
        natsMsg_Destroy(m);
        return;
    }
    rt_msg_t *msg = rt_nats_decode(m, nb->prefix, "_eph.");
    if (msg) {
        msg->flags |= RT_MSG_EPHEMERAL;
        rt_hub_broadcast(msg);
        rt_msg_unref(msg);
    }
    natsMsg_Destroy(m);
}

static __thread char epoch_copy[16];
static rt_str_t nb_epoch(rt_bus_t *bus)
{
    natsbus_t *nb = (natsbus_t *)bus;
    pthread_mutex_lock(&nb->lock);
    snprintf(epoch_copy, sizeof(epoch_copy), "%s", nb->epoch[0] ? nb->epoch : "none");
    pthread_mutex_unlock(&nb->lock);
    return rt_cstr(epoch_copy);
}

static int nb_ready(rt_bus_t *bus)
{
    natsbus_t *nb = (natsbus_t *)bus;
    pthread_mutex_lock(&nb->lock);
    int ready = nb->connected && nb->stream_ok; /* nothing to load: history is read on demand */
    pthread_mutex_unlock(&nb->lock);
    return ready;
}

static void nb_tick(rt_bus_t *bus)
{
    expire_pending((natsbus_t *)bus); /* here too: the bus thread may be waiting on a JetStream request */
}

static void nb_metrics(rt_bus_t *bus, rt_buf_t *out)
{
    natsbus_t *nb = (natsbus_t *)bus;
    pthread_mutex_lock(&nb->lock);
    int up = nb->connected && nb->stream_ok;
    uint64_t seq = nb->live_seq, count = nb->pub_count, lat = nb->pub_latency_us;
    size_t inflight = nb->pending.count;
    pthread_mutex_unlock(&nb->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_bus_up Whether the bus is connected.\n# TYPE rtbroker_bus_up gauge\nrtbroker_bus_up{bus=\"nats\"} %d\n"
                  "# HELP rtbroker_bus_seq The highest stream SEQ handed to this node's subscribers.\n# TYPE rtbroker_bus_seq gauge\n"
                  "rtbroker_bus_seq %llu\n"
                  "# HELP rtbroker_nats_publish_latency_seconds Time from publish to JetStream ack.\n"
                  "# TYPE rtbroker_nats_publish_latency_seconds summary\n"
                  "rtbroker_nats_publish_latency_seconds_sum %.6f\nrtbroker_nats_publish_latency_seconds_count %llu\n"
                  "# HELP rtbroker_nats_publishes_in_flight Publishes waiting for a JetStream ack.\n"
                  "# TYPE rtbroker_nats_publishes_in_flight gauge\nrtbroker_nats_publishes_in_flight %zu\n",
                  up, (unsigned long long)seq, (double)lat / 1e6, (unsigned long long)count, inflight);
    rt_nats_live_metrics(nb, out);
    rt_nats_fetch_metrics(nb, out);
}

/* DELETE /api/history: this node's cache (api_cluster.c purges the stream) */
static size_t nb_forget(rt_bus_t *bus, rt_str_t topic) { return rt_nats_cache_forget((natsbus_t *)bus, topic); }

static const rt_bus_ops_t natsbus_ops = {"nats",         nb_start,         nb_stop,  nb_publish, nb_publish_ephemeral,
                                         rt_nats_replay, rt_nats_interest, nb_epoch, nb_ready,   nb_tick,
                                         nb_metrics,     nb_forget};

rt_bus_t *rt_bus_nats_new(void)
{
    natsbus_t *nb = rt_calloc(1, sizeof(*nb));
    nb->super.ops = &natsbus_ops;
    pthread_mutex_init(&nb->lock, NULL);
    pthread_mutex_init(&nb->interest_lock, NULL);
    pthread_cond_init(&nb->wake, NULL);
    pthread_cond_init(&nb->live_wake, NULL);
    pthread_cond_init(&nb->fetch_wake, NULL);
    return &nb->super;
}
