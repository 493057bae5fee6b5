/*
 * History on demand for the NATS bus: replays (resumes, long-poll cursors, /history)
 * are read from JetStream by a fetch thread, never on a worker, and answered on the
 * asking worker through rt_hub_post. The seam with live delivery: the patterns'
 * interest is active on the server before the stream's last SEQ is read, and the
 * answer is posted under the bus lock once it covers every SEQ live delivery handed
 * to the workers, so what follows its head reaches the worker after it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bus_nats.h"
#include "config.h"
#include "hub.h"
#include "namespace.h"

struct nb_job {
    nb_job_t *next;
    rt_worker_t *w;
    rt_replay_t *r;
    rt_replay_cb cb;
    void *ctx;
    rt_str_t *patterns; /* copies */
    size_t npatterns;
    int err;
    int from_then;      /* "from now": what is stored after it was asked (what we knew then bounds the read) */
    uint64_t then_seq;
    int64_t then_ns;    /* wall clock of the subscribe */
    char then_epoch[16];
};

int rt_nats_fetch_range(natsbus_t *nb, const char *filter, uint64_t from, uint64_t to, int64_t not_before_ns, size_t max,
                        rt_msg_t ***msgs, size_t *n, size_t *cap, int *more)
{
    if (from > to || from == 0)
        return from > to ? RT_OK : RT_EINVAL;
    char epoch[16], subject[RT_TOPIC_MAX + 140];
    pthread_mutex_lock(&nb->lock);
    memcpy(epoch, nb->epoch, sizeof(epoch));
    pthread_mutex_unlock(&nb->lock);
    snprintf(subject, sizeof(subject), "%s.%s", nb->prefix, filter);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = nb->stream;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    so.Config.AckPolicy = js_AckNone;
    so.Config.MemoryStorage = true;
    so.Config.InactiveThreshold = 10 * 1000000000LL; /* the server drops it by itself if we could not */
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    uint64_t started = rt_now_ms();
    if (js_PullSubscribe(&sub, nb->js, subject, NULL, NULL, &so, &jerr) != NATS_OK) {
        rt_log(RT_LOG_WARN, "nats: cannot read %s from SEQ %llu (JetStream error %d)", subject, (unsigned long long)from, (int)jerr);
        return RT_EUNAVAILABLE;
    }
    int err = RT_OK, done = 0;
    size_t got = 0;
    jsConsumerInfo *ci = NULL; /* how many match from `from` on: no fetch waits for messages that do not exist */
    uint64_t remaining = 0;
    if (natsSubscription_GetConsumerInfo(&ci, sub, NULL, &jerr) != NATS_OK)
        err = RT_EUNAVAILABLE, done = 1;
    else
        remaining = ci->NumPending, done = remaining == 0;
    jsConsumerInfo_Destroy(ci);
    while (!done) {
        jsFetchRequest fr;
        jsFetchRequest_Init(&fr);
        fr.Batch = remaining < 256 ? (int)remaining : 256;
        fr.Expires = 2000 * 1000000LL; /* answered as soon as the batch is there */
        natsMsgList list = {0};
        natsStatus s = natsSubscription_FetchRequest(&list, sub, &fr);
        if (s == NATS_NOT_FOUND)
            break; /* nothing (more) in range */
        if (s == NATS_TIMEOUT && remaining > 0) { /* the messages are there: a slow or lost link, not the end */
            err = RT_EUNAVAILABLE;
            break;
        }
        if (s == NATS_TIMEOUT)
            break;
        if (s != NATS_OK) {
            err = RT_EUNAVAILABLE;
            break;
        }
        int count = list.Count;
        for (int i = 0; i < count && !done; i++) {
            jsMsgMetaData *meta = NULL;
            if (natsMsg_GetMetaData(&meta, list.Msgs[i]) != NATS_OK)
                continue;
            uint64_t seq = meta->Sequence.Stream, pending = meta->NumPending;
            int64_t stored_ns = meta->Timestamp;
            jsMsgMetaData_Destroy(meta);
            remaining = pending;
            if (stored_ns < not_before_ns) {
                done = pending == 0;
                continue;
            }
            if (seq > to) {
                done = 1;
                break;
            }
            if (max && got == max) {
                *more = 1;
                done = 1;
                break;
            }
            rt_msg_t *msg = rt_nats_msg(nb, list.Msgs[i], seq, epoch);
            if (msg) {
                if (*n == *cap) {
                    *cap = *cap ? *cap * 2 : 64;
                    *msgs = rt_realloc(*msgs, *cap * sizeof(**msgs));
                }
                (*msgs)[(*n)++] = msg;
                got++;
            }
            if (pending == 0)
                done = 1;
        }
        natsMsgList_Destroy(&list);
        if (count == 0)
            break;
    }
    natsSubscription_Unsubscribe(sub); /* deletes the consumer */
    natsSubscription_Destroy(sub);
    pthread_mutex_lock(&nb->lock);
    nb->fetches++;
    nb->fetched_msgs += got;
    nb->fetch_us += rt_ms_since(started, rt_now_ms()) * 1000;
    pthread_mutex_unlock(&nb->lock);
    return err;
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = (*(rt_msg_t *const *)a)->seq, y = (*(rt_msg_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Sorts by SEQ and drops the doubles (a topic matched by two patterns). */
static void sort_unique(rt_replay_t *r)
{
    if (r->count < 2)
        return;
    qsort(r->msgs, r->count, sizeof(*r->msgs), cmp_seq);
    size_t k = 1;
    for (size_t i = 1; i < r->count; i++) {
        if (r->msgs[i]->seq == r->msgs[k - 1]->seq)
            rt_msg_unref(r->msgs[i]);
        else
            r->msgs[k++] = r->msgs[i];
    }
    r->count = k;
}

/* JetStream keeps history.max_messages per topic: a topic with that many after `after` may have lost some before
 * them (a message's predecessor is not told outside the re-publish), so the resume gets the gap notice. */
static int capped(const rt_replay_t *r, uint64_t after)
{
    size_t global = (size_t)rt_cfg_int("history.max_messages");
    rt_map_t counts = {0};
    int gap = 0;
    for (size_t i = 0; i < r->count && !gap; i++) {
        if (r->msgs[i]->seq <= after)
            continue;
        size_t cap = global;
        uint64_t age = 0;
        rt_ns_history(r->msgs[i]->topic, &cap, &age);
        size_t n = (size_t)(uintptr_t)rt_map_get(&counts, r->msgs[i]->topic) + 1;
        rt_map_put(&counts, r->msgs[i]->topic, (void *)(uintptr_t)n);
        gap = n >= cap;
    }
    rt_map_free(&counts);
    return gap;
}

/* The stream keeps the largest namespace's length and age for every topic, and api_cluster.c's sweep trims the others
 * every few seconds: until it has, an answer leaves out what the topic's namespace would not keep. */
static void ns_trim(rt_replay_t *r)
{
    if (rt_ns_count() == 0 || r->count == 0)
        return;
    size_t global = (size_t)rt_cfg_int("history.max_messages");
    uint64_t global_age = (uint64_t)rt_cfg_int("history.max_age"), now = rt_wall_ms();
    rt_map_t counts = {0};
    size_t k = r->count;
    for (size_t i = r->count; i-- > 0;) { /* newest first */
        rt_msg_t *m = r->msgs[i];
        size_t keep = global;
        uint64_t age = global_age;
        rt_ns_history(m->topic, &keep, &age);
        size_t n = (size_t)(uintptr_t)rt_map_get(&counts, m->topic) + 1;
        rt_map_put(&counts, m->topic, (void *)(uintptr_t)n);
        if (n > keep || (age && m->time_ms + age <= now)) {
            rt_msg_unref(m);
            continue;
        }
        r->msgs[--k] = m;
    }
    rt_map_free(&counts);
    memmove(r->msgs, r->msgs + k, (r->count - k) * sizeof(*r->msgs));
    r->count -= k;
}

static int fetch_patterns(natsbus_t *nb, nb_job_t *j, uint64_t from, uint64_t to, int64_t not_before_ns, size_t max,
                          size_t *cap, int *more)
{
    rt_replay_t *r = j->r;
    for (size_t i = 0; i < j->npatterns; i++)
        if (rt_nats_fetch_range(nb, j->patterns[i].base, from, to, not_before_ns, max, &r->msgs, &r->count, cap, more) != RT_OK)
            return RT_EUNAVAILABLE;
    sort_unique(r);
    ns_trim(r);
    return RT_OK;
}

static void run_done(void *arg)
{
    nb_job_t *j = arg;
    j->cb(j->ctx, j->r, j->err);
    for (size_t i = 0; i < j->npatterns; i++)
        free((char *)j->patterns[i].base);
    free(j->patterns);
    free(j);
}

/* Fills j->r as the memory bus would (history.c), from the stream; posts the answer. 1: NATS failed us, to retry. */
static int run_job(natsbus_t *nb, nb_job_t *j)
{
    rt_replay_t *r = j->r;
    uint64_t first = 0, last = 0;
    size_t cap = 0;
    int more = 0;
    r->msgs = NULL, r->count = 0, r->gap = 0, r->truncated = 0, r->after = 0;
    if (rt_nats_interest_activate(nb) != 0 || rt_nats_stream_state(nb, &first, &last) != RT_OK) {
        j->err = RT_EUNAVAILABLE;
        goto post;
    }
    char epoch[16];
    pthread_mutex_lock(&nb->lock);
    memcpy(epoch, nb->epoch, sizeof(epoch));
    pthread_mutex_unlock(&nb->lock);
    r->head = last;
    if (r->has_before) { /* everything retained below `before`, the newest `max` of it */
        uint64_t to = r->before == 0 ? 0 : r->before - 1;
        r->gap = first > 1;
        if ((j->err = fetch_patterns(nb, j, first ? first : 1, to < last ? to : last, 0, 0, &cap, &more)) != RT_OK)
            goto post;
        if (r->max && r->count > r->max) {
            size_t drop = r->count - r->max;
            for (size_t i = 0; i < drop; i++)
                rt_msg_unref(r->msgs[i]);
            memmove(r->msgs, r->msgs + drop, r->max * sizeof(*r->msgs));
            r->count = r->max;
            r->truncated = 1;
        }
        goto post;
    }
    if (j->from_then) { /* what was stored since that subscribe is new to it */
        uint64_t after = !j->then_epoch[0] ? nb->epoch_seq : strcmp(j->then_epoch, epoch) == 0 ? j->then_seq : 0;
        /* of what was stored by then, what came after the subscribe (NATS's clock against ours) */
        if (after < last && (j->err = fetch_patterns(nb, j, after + 1, last, j->then_ns, 0, &cap, &more)) != RT_OK)
            goto post;
    } else if (r->has_since) {
        uint64_t after = r->since.seq;
        if (!rt_str_eq(r->since.epoch, rt_cstr(epoch))) {
            r->gap = 1;
            after = 0;
        } else if (after > last) {
            r->head = after; /* another node may be ahead of what we read: the rest arrives live */
        } else if (first > after + 1) {
            r->gap = 1; /* the stream no longer has some messages after since (age, a purge): any of them may have matched */
        }
        r->after = after;
        if (after < last) {
            j->err = fetch_patterns(nb, j, after + 1, last, 0, r->max ? r->max + 1 : 0, &cap, &more);
            if (j->err != RT_OK)
                goto post;
            if (r->max && r->count > r->max) {
                for (size_t i = r->max; i < r->count; i++)
                    rt_msg_unref(r->msgs[i]);
                r->count = r->max;
                r->truncated = 1;
            }
            r->gap |= capped(r, after);
        }
    }
post:
    pthread_mutex_lock(&nb->lock);
    /* the seam: what live delivery already handed over must be in the answer */
    while (j->err == RT_OK && !r->has_before && !r->truncated && nb->live_seq > r->head) {
        uint64_t from = r->head + 1, to = nb->live_seq;
        pthread_mutex_unlock(&nb->lock);
        if (r->has_since || j->from_then)
            j->err = fetch_patterns(nb, j, from, to, 0, 0, &cap, &more);
        r->head = to;
        pthread_mutex_lock(&nb->lock);
    }
    if (j->err != RT_OK) {
        for (size_t i = 0; i < r->count; i++)
            rt_msg_unref(r->msgs[i]);
        free(r->msgs);
        r->msgs = NULL, r->count = 0;
        if (!nb->stopping) { /* replays wait for NATS rather than fail */
            pthread_mutex_unlock(&nb->lock);
            j->err = RT_OK;
            return 1;
        }
    }
    if (!r->has_since && !r->has_before)
        r->after = r->head; /* from now: a from-then replay holds only what came after the subscribe */
    uint64_t head = r->head;
    int forward = !r->has_before && j->err == RT_OK;
    rt_str_t *patterns = j->patterns;
    size_t np = j->npatterns;
    j->patterns = NULL, j->npatterns = 0; /* r and j belong to the worker from here */
    rt_hub_post(j->w, run_done, j);
    pthread_mutex_unlock(&nb->lock);
    if (forward)
        rt_nats_interest_head(nb, patterns, np, head);
    for (size_t i = 0; i < np; i++)
        free((char *)patterns[i].base);
    free(patterns);
    return 0;
}

static void *fetch_thread(void *arg)
{
    natsbus_t *nb = arg;
    pthread_mutex_lock(&nb->lock);
    for (;;) {
        if (nb->stopping)
            break;
        if (nb->jobs == NULL || !(nb->connected && nb->stream_ok)) { /* replays wait for NATS */
            rt_nats_wait(nb, &nb->fetch_wake, 100);
            continue;
        }
        nb_job_t *j = nb->jobs;
        nb->jobs = j->next;
        if (nb->jobs == NULL)
            nb->jobs_tail = NULL;
        pthread_mutex_unlock(&nb->lock);
        int retry = run_job(nb, j);
        pthread_mutex_lock(&nb->lock);
        if (retry) { /* first again, after a pause */
            j->next = nb->jobs;
            nb->jobs = j;
            if (nb->jobs_tail == NULL)
                nb->jobs_tail = j;
            rt_nats_wait(nb, &nb->fetch_wake, 1000);
        }
    }
    pthread_mutex_unlock(&nb->lock);
    return NULL;
}

int rt_nats_replay(rt_bus_t *bus, rt_replay_t *r, rt_replay_cb cb, void *ctx)
{
    natsbus_t *nb = (natsbus_t *)bus;
    if (!r->has_since && !r->has_before) { /* from now, on interest the server has: the last SEQ handed over */
        pthread_mutex_lock(&nb->lock);
        int up = nb->connected && nb->stream_ok;
        uint64_t head = nb->live_seq;
        pthread_mutex_unlock(&nb->lock);
        if (up && rt_nats_interest_active(nb, r->patterns, r->npatterns)) {
            r->msgs = NULL, r->count = 0, r->gap = 0, r->truncated = 0;
            r->head = r->after = head;
            pthread_mutex_lock(&nb->lock);
            nb->replays_local++;
            pthread_mutex_unlock(&nb->lock);
            return RT_OK;
        }
    }
    nb_job_t *j = rt_calloc(1, sizeof(*j));
    pthread_mutex_lock(&nb->lock);
    if (!r->has_since && !r->has_before) { /* "from now" is when it was asked, not when JetStream answers */
        j->from_then = 1;
        j->then_seq = r->pending_head = nb->known_seq;
        j->then_ns = (int64_t)rt_wall_ms() * 1000000LL;
        memcpy(j->then_epoch, nb->epoch, sizeof(j->then_epoch));
    }
    pthread_mutex_unlock(&nb->lock);
    j->w = rt_current_worker;
    j->r = r, j->cb = cb, j->ctx = ctx;
    j->patterns = rt_malloc(r->npatterns * sizeof(*j->patterns));
    for (size_t i = 0; i < r->npatterns; i++) {
        char *c = rt_malloc(r->patterns[i].len + 1);
        memcpy(c, r->patterns[i].base, r->patterns[i].len);
        c[r->patterns[i].len] = '\0';
        j->patterns[j->npatterns++] = rt_str(c, r->patterns[i].len);
    }
    pthread_mutex_lock(&nb->lock);
    if (nb->jobs_tail)
        nb->jobs_tail->next = j;
    else
        nb->jobs = j;
    nb->jobs_tail = j;
    pthread_cond_signal(&nb->fetch_wake);
    pthread_mutex_unlock(&nb->lock);
    return RT_REPLAY_PENDING;
}

void rt_nats_fetch_start(natsbus_t *nb) { pthread_create(&nb->fetch_thread, NULL, fetch_thread, nb); }

void rt_nats_fetch_stop(natsbus_t *nb)
{
    rt_nats_join(nb, &nb->fetch_wake, nb->fetch_thread);
    while (nb->jobs) { /* the workers have stopped: their subscribers are ended, and only their memory waits */
        nb_job_t *j = nb->jobs;
        nb->jobs = j->next;
        j->err = RT_EUNAVAILABLE;
        run_done(j);
    }
}

void rt_nats_fetch_metrics(natsbus_t *nb, rt_buf_t *out)
{
    pthread_mutex_lock(&nb->lock);
    uint64_t n = nb->fetches, us = nb->fetch_us, msgs = nb->fetched_msgs, local = nb->replays_local;
    size_t queued = 0;
    for (nb_job_t *j = nb->jobs; j; j = j->next)
        queued++;
    pthread_mutex_unlock(&nb->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_history_fetch_seconds Reads of history from JetStream (replays, catch-ups).\n"
                  "# TYPE rtbroker_history_fetch_seconds summary\n"
                  "rtbroker_history_fetch_seconds_sum %.6f\nrtbroker_history_fetch_seconds_count %llu\n"
                  "# HELP rtbroker_history_fetched_messages_total Messages read from JetStream on demand.\n"
                  "# TYPE rtbroker_history_fetched_messages_total counter\nrtbroker_history_fetched_messages_total %llu\n"
                  "# HELP rtbroker_history_local_total Subscriptions from now answered without asking JetStream.\n"
                  "# TYPE rtbroker_history_local_total counter\nrtbroker_history_local_total %llu\n"
                  "# HELP rtbroker_history_fetch_queued Replays waiting for JetStream.\n"
                  "# TYPE rtbroker_history_fetch_queued gauge\nrtbroker_history_fetch_queued %zu\n",
                  (double)us / 1e6, (unsigned long long)n, (unsigned long long)msgs, (unsigned long long)local, queued);
}
