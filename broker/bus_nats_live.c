/*
 * Live delivery of the NATS bus, following interest: a core subscription on
 * `<prefix>_live.<pattern>` for each topic or pattern this node's clients subscribe to
 * (counted across workers), fed by the stream's re-publish. A live thread hands the
 * messages to the workers in SEQ order; re-published messages are at most once, so it
 * fetches from JetStream what it missed: after a lost connection (everything of our
 * interest after the last SEQ handed over) and when a message's Nats-Last-Sequence
 * names one of its topic we never saw. nats.c's callback only queues. Ephemeral messages
 * follow the same interest on `<prefix>_eph.<pattern>` (bus_nats.c hands them over).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bus_nats.h"
#include "config.h"
#include "hub.h"

typedef struct subject {
    uint64_t seq; /* the last SEQ of this topic handed to the workers */
    char name[];
} subject_t;

static void queue_push_locked(natsbus_t *nb, natsMsg *m)
{
    if (nb->qlen == nb->qcap) {
        nb->qcap = nb->qcap ? nb->qcap * 2 : 256;
        nb->queue = rt_realloc(nb->queue, nb->qcap * sizeof(*nb->queue));
    }
    nb->queue[nb->qlen++] = m;
    pthread_cond_signal(&nb->live_wake);
}

static void on_live(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    natsbus_t *nb = closure;
    (void)nc, (void)sub;
    pthread_mutex_lock(&nb->lock);
    if (nb->live_closed) { /* stopping: nats.c may still be running a callback it had begun */
        pthread_mutex_unlock(&nb->lock);
        natsMsg_Destroy(m);
        return;
    }
    queue_push_locked(nb, m);
    nb->msgs_in++;
    pthread_mutex_unlock(&nb->lock);
}

void rt_nats_live_lost(natsbus_t *nb)
{
    pthread_mutex_lock(&nb->lock);
    if (!nb->live_closed)
        queue_push_locked(nb, NULL); /* what follows waits for the catch-up */
    pthread_mutex_unlock(&nb->lock);
}

void rt_nats_live_reset(natsbus_t *nb)
{
    for (size_t i = 0; i < nb->qlen; i++) /* the old stream's: their SEQs mean nothing now */
        natsMsg_Destroy(nb->queue[i]);
    nb->qlen = 0;
    size_t b = 0;
    for (rt_map_entry_t *e = rt_map_next(&nb->subjects, NULL, &b), *next; e; e = next) {
        next = rt_map_next(&nb->subjects, e, &b);
        free(rt_map_del(&nb->subjects, e->key));
    }
    nb->live_seq = 0;
    rt_nats_cache_clear(nb); /* the old stream's */
    queue_push_locked(nb, NULL); /* catch up from SEQ 0 of the new stream */
}

/* Under nb->lock: hand msg to every worker unless its topic already went past it. */
static void deliver_locked(natsbus_t *nb, rt_msg_t *msg)
{
    subject_t *s = rt_map_get(&nb->subjects, msg->topic);
    if (s && msg->seq <= s->seq)
        return;
    if (s == NULL) {
        s = rt_malloc(sizeof(*s) + msg->topic.len);
        memcpy(s->name, msg->topic.base, msg->topic.len);
        rt_map_put(&nb->subjects, rt_str(s->name, msg->topic.len), s);
    }
    s->seq = msg->seq;
    if (msg->seq > nb->live_seq)
        nb->live_seq = msg->seq;
    if (msg->seq > nb->known_seq)
        nb->known_seq = msg->seq;
    rt_hub_broadcast(msg);
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = (*(rt_msg_t *const *)a)->seq, y = (*(rt_msg_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

static void deliver_all(natsbus_t *nb, rt_msg_t **msgs, size_t n, uint64_t upto)
{
    if (n > 1)
        qsort(msgs, n, sizeof(*msgs), cmp_seq);
    pthread_mutex_lock(&nb->lock);
    for (size_t i = 0; i < n; i++)
        deliver_locked(nb, msgs[i]);
    if (upto > nb->live_seq)
        nb->live_seq = upto;
    pthread_mutex_unlock(&nb->lock);
    for (size_t i = 0; i < n; i++)
        rt_msg_unref(msgs[i]);
    free(msgs);
}

/* After a lost connection: every message of our interest after `from`, in SEQ order. 0 if NATS failed us. */
static int catch_up(natsbus_t *nb, uint64_t from)
{
    uint64_t first, last;
    if (rt_nats_stream_state(nb, &first, &last) != RT_OK)
        return 0;
    if (last <= from)
        return 1;
    pthread_mutex_lock(&nb->interest_lock);
    size_t np = 0, b = 0;
    char **patterns = rt_malloc((nb->interest.count + 1) * sizeof(*patterns));
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nb->interest, e, &b)) != NULL;)
        patterns[np++] = strdup(((nb_interest_t *)e->value)->pattern);
    pthread_mutex_unlock(&nb->interest_lock);
    rt_msg_t **msgs = NULL;
    size_t n = 0, cap = 0;
    int more = 0, ok = 1;
    for (size_t i = 0; i < np; i++) {
        if (ok && rt_nats_fetch_range(nb, patterns[i], from + 1, last, 0, 0, &msgs, &n, &cap, &more) != RT_OK)
            ok = 0;
        free(patterns[i]);
    }
    free(patterns);
    if (n)
        rt_log(RT_LOG_INFO, "nats: caught up %zu messages after SEQ %llu", n, (unsigned long long)from);
    pthread_mutex_lock(&nb->lock);
    nb->caught_up += n;
    pthread_mutex_unlock(&nb->lock);
    deliver_all(nb, msgs, n, ok ? last : 0); /* what we got, in order, even if a later pattern failed */
    return ok;
}

/* The lowest head of the completed replays whose pattern matches topic: SEQs after it were ours to receive. */
static uint64_t interest_floor(natsbus_t *nb, rt_str_t topic)
{
    uint64_t floor = 0;
    pthread_mutex_lock(&nb->interest_lock);
    size_t b = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nb->interest, e, &b)) != NULL;) {
        nb_interest_t *in = e->value;
        if (in->head && rt_topic_match(rt_cstr(in->pattern), topic) && (floor == 0 || in->head < floor))
            floor = in->head;
    }
    pthread_mutex_unlock(&nb->interest_lock);
    return floor;
}

/* A received message held until nothing before it can still come. nats-server 2.9 re-publishes after storing, outside
 * the stream's lock: two publishers' messages can come out of SEQ order (measured here: 1,255 of 80,000 from 4
 * publishing connections, up to 1,089 SEQs back, up to 18 ms late). A pattern's subscribers would miss the one
 * that comes after a later SEQ (a cursor is one SEQ), so messages wait up to nats.reorder_window to be put in
 * order; one that directly follows what was handed over goes at once. */
typedef struct nb_held {
    rt_msg_t *msg;
    uint64_t prev; /* Nats-Last-Sequence: the previous SEQ of its topic */
    uint64_t at;   /* received (ms, monotonic) */
} nb_held_t;

static uint64_t header_u64(natsMsg *m, const char *name)
{
    const char *v = NULL;
    if (natsMsgHeader_Get(m, name, &v) != NATS_OK || v == NULL)
        return 0;
    return strtoull(v, NULL, 10);
}

/* The hold is touched by the live thread only. */
static void hold_insert(natsbus_t *nb, natsMsg *m)
{
    uint64_t seq = header_u64(m, "Nats-Sequence"), prev = header_u64(m, "Nats-Last-Sequence");
    char epoch[16];
    pthread_mutex_lock(&nb->lock);
    memcpy(epoch, nb->epoch, sizeof(epoch));
    pthread_mutex_unlock(&nb->lock);
    rt_msg_t *msg = seq ? rt_nats_msg(nb, m, seq, epoch) : NULL;
    natsMsg_Destroy(m);
    if (msg == NULL)
        return;
    size_t i = nb->nhold;
    while (i > 0 && nb->hold[i - 1].msg->seq > seq)
        i--;
    if (i > 0 && nb->hold[i - 1].msg->seq == seq) { /* another of our patterns matched it too */
        rt_msg_unref(msg);
        return;
    }
    uint64_t now = rt_now_ms();
    if (i < nb->nhold) { /* a later SEQ came first */
        uint64_t first = now;
        for (size_t k = i; k < nb->nhold; k++)
            first = nb->hold[k].at < first ? nb->hold[k].at : first;
        pthread_mutex_lock(&nb->lock);
        nb->reordered++;
        if (now - first > nb->late_max_ms)
            nb->late_max_ms = now - first;
        pthread_mutex_unlock(&nb->lock);
    }
    if (nb->nhold == nb->holdcap)
        nb->hold = rt_realloc(nb->hold, (nb->holdcap = nb->holdcap ? nb->holdcap * 2 : 64) * sizeof(*nb->hold));
    memmove(nb->hold + i + 1, nb->hold + i, (nb->nhold - i) * sizeof(*nb->hold));
    nb->hold[i] = (nb_held_t){msg, prev, now};
    pthread_mutex_lock(&nb->lock); /* the live thread alone changes the hold; the metrics read its size */
    nb->nhold++;
    pthread_mutex_unlock(&nb->lock);
}

/* One message in SEQ order: first what we missed of its topic, then it. */
static void release_one(natsbus_t *nb, rt_msg_t *msg, uint64_t prev)
{
    uint64_t seq = msg->seq;
    pthread_mutex_lock(&nb->lock);
    subject_t *s = rt_map_get(&nb->subjects, msg->topic);
    uint64_t known = s ? s->seq : 0;
    uint64_t handed = nb->live_seq;
    int late = seq < handed;
    char epoch[16];
    memcpy(epoch, nb->epoch, sizeof(epoch));
    pthread_mutex_unlock(&nb->lock);
    size_t el = strlen(epoch);
    int stale = msg->id.len <= el || memcmp(msg->id.base, epoch, el) != 0 || msg->id.base[el] != ':';
    if ((s && seq <= known) || stale) { /* a catch-up brought it already, or it is of a stream since replaced */
        rt_msg_unref(msg);
        return;
    }
    if (late) { /* after a later SEQ was handed over: a pattern's subscribers skip it (the metric says how often) */
        pthread_mutex_lock(&nb->lock);
        nb->late++;
        pthread_mutex_unlock(&nb->lock);
        rt_log(RT_LOG_WARN, "nats: SEQ %llu of %.*s came after SEQ %llu was delivered: raise nats.reorder_window",
               (unsigned long long)seq, (int)msg->topic.len, msg->topic.base, (unsigned long long)handed);
    }
    uint64_t floor = s ? known : interest_floor(nb, msg->topic);
    if (prev > floor && floor > 0) { /* its topic had a message after the last we know of: fetch what we missed */
        rt_msg_t **msgs = NULL;
        size_t n = 0, cap = 0;
        int more = 0;
        char topic[RT_TOPIC_MAX + 1];
        snprintf(topic, sizeof(topic), "%.*s", (int)msg->topic.len, msg->topic.base);
        while (rt_nats_fetch_range(nb, topic, floor + 1, seq - 1, 0, 0, &msgs, &n, &cap, &more) != RT_OK) {
            for (size_t i = 0; i < n; i++) /* never deliver past what could not be read: again until NATS answers */
                rt_msg_unref(msgs[i]);
            n = 0;
            pthread_mutex_lock(&nb->lock);
            int stopping = nb->stopping;
            pthread_mutex_unlock(&nb->lock);
            if (stopping)
                break;
            struct timespec pause = {0, 100 * 1000000L};
            nanosleep(&pause, NULL);
        }
        pthread_mutex_lock(&nb->lock);
        nb->missed += n;
        pthread_mutex_unlock(&nb->lock);
        rt_log(RT_LOG_INFO, "nats: %.*s: fetched %zu missed messages before SEQ %llu", (int)msg->topic.len, msg->topic.base, n,
               (unsigned long long)seq);
        deliver_all(nb, msgs, n, 0);
    }
    rt_nats_cache_live(nb, epoch, msg, prev); /* kept for resumes: nothing of its topic came between prev and it */
    pthread_mutex_lock(&nb->lock);
    deliver_locked(nb, msg);
    pthread_mutex_unlock(&nb->lock);
    rt_msg_unref(msg);
}

/* Hands over, in SEQ order, the held messages whose wait is over or that follow what was handed over; how long
 * until the first of the rest may go (ms), 0 if none is held. */
static uint64_t release_due(natsbus_t *nb)
{
    size_t done = 0;
    uint64_t now = rt_now_ms(), wait = 0;
    while (done < nb->nhold) {
        nb_held_t *h = &nb->hold[done];
        pthread_mutex_lock(&nb->lock);
        int next = h->msg->seq == nb->live_seq + 1;
        pthread_mutex_unlock(&nb->lock);
        if (!next && h->at + nb->reorder_ms > now) {
            wait = h->at + nb->reorder_ms - now;
            break;
        }
        done++;
        release_one(nb, h->msg, h->prev);
    }
    memmove(nb->hold, nb->hold + done, (nb->nhold - done) * sizeof(*nb->hold));
    pthread_mutex_lock(&nb->lock);
    nb->nhold -= done;
    pthread_mutex_unlock(&nb->lock);
    return wait;
}

/* A lost connection (or a new stream): what is held is read again by the catch-up, which starts before it. */
static uint64_t hold_drop(natsbus_t *nb, uint64_t from)
{
    if (nb->nhold && nb->hold[0].msg->seq <= from)
        from = nb->hold[0].msg->seq - 1;
    for (size_t i = 0; i < nb->nhold; i++)
        rt_msg_unref(nb->hold[i].msg);
    pthread_mutex_lock(&nb->lock);
    nb->nhold = 0;
    pthread_mutex_unlock(&nb->lock);
    return from;
}

static void *live_thread(void *arg)
{
    natsbus_t *nb = arg;
    natsMsg **batch = NULL;
    size_t bcap = 0;
    int catching_up = 0;
    uint64_t from = 0, wait = 0;
    pthread_mutex_lock(&nb->lock);
    for (;;) {
        if (nb->stopping)
            break;
        if (catching_up) {
            if (!(nb->connected && nb->stream_ok)) {
                rt_nats_wait(nb, &nb->live_wake, 100);
                continue;
            }
            pthread_mutex_unlock(&nb->lock);
            int ok = catch_up(nb, from);
            pthread_mutex_lock(&nb->lock);
            catching_up = !ok;
            continue;
        }
        if (nb->qlen == 0) {
            if (wait == 0) {
                pthread_cond_wait(&nb->live_wake, &nb->lock);
            } else {
                rt_nats_wait(nb, &nb->live_wake, (long)wait);
                if (nb->qlen || nb->stopping)
                    continue; /* what came (maybe the marker of a new stream) goes first */
                pthread_mutex_unlock(&nb->lock);
                wait = release_due(nb);
                pthread_mutex_lock(&nb->lock);
            }
            continue;
        }
        size_t n = 0;
        while (n < nb->qlen && nb->queue[n] != NULL)
            n++;
        if (n == 0) { /* the marker of a lost connection (or a new stream): catch up from what we handed over */
            memmove(nb->queue, nb->queue + 1, (--nb->qlen) * sizeof(*nb->queue));
            catching_up = 1;
            from = nb->live_seq;
            pthread_mutex_unlock(&nb->lock);
            from = hold_drop(nb, from);
            wait = 0;
            pthread_mutex_lock(&nb->lock);
            continue;
        }
        if (n > bcap)
            batch = rt_realloc(batch, (bcap = n) * sizeof(*batch));
        memcpy(batch, nb->queue, n * sizeof(*batch));
        memmove(nb->queue, nb->queue + n, (nb->qlen - n) * sizeof(*nb->queue));
        nb->qlen -= n;
        pthread_mutex_unlock(&nb->lock);
        for (size_t i = 0; i < n; i++)
            hold_insert(nb, batch[i]);
        wait = release_due(nb);
        pthread_mutex_lock(&nb->lock);
    }
    pthread_mutex_unlock(&nb->lock);
    hold_drop(nb, 0);
    free(nb->hold);
    nb->hold = NULL;
    free(batch);
    return NULL;
}

void rt_nats_live_start(natsbus_t *nb)
{
    nb->reorder_ms = (uint64_t)rt_cfg_int("nats.reorder_window");
    rt_nats_cache_init(nb); /* before anything is received; freed last, in rt_nats_live_stop */
    pthread_create(&nb->live_thread, NULL, live_thread, nb);
}

void rt_nats_live_stop(natsbus_t *nb)
{
    rt_nats_join(nb, &nb->live_wake, nb->live_thread);
    pthread_mutex_lock(&nb->lock);
    nb->live_closed = 1;
    for (size_t i = 0; i < nb->qlen; i++)
        natsMsg_Destroy(nb->queue[i]);
    free(nb->queue);
    nb->queue = NULL, nb->qlen = nb->qcap = 0;
    pthread_mutex_unlock(&nb->lock);
    size_t b = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nb->subjects, e, &b)) != NULL;)
        free(e->value);
    rt_map_free(&nb->subjects);
    b = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nb->interest, e, &b)) != NULL;) {
        nb_interest_t *in = e->value;
        natsSubscription_Destroy(in->sub);
        natsSubscription_Destroy(in->eph);
        free(in);
    }
    rt_map_free(&nb->interest);
    rt_nats_cache_free(nb);
}

/* Under interest_lock. Buffered while NATS is away and sent again after every reconnect; retried by
 * rt_nats_interest_unconfirmed if nats.c refused it. */
static void live_subscribe(natsbus_t *nb, nb_interest_t *in)
{
    char subject[RT_TOPIC_MAX + 160];
    snprintf(subject, sizeof(subject), "%s.%s", nb->live, in->pattern);
    in->gen = ++nb->interest_gen;
    if (natsConnection_Subscribe(&in->sub, nb->nc, subject, on_live, nb) == NATS_OK)
        natsSubscription_SetPendingLimits(in->sub, -1, -1); /* never dropped here: the loss would go unseen */
    else
        in->sub = NULL;
    snprintf(subject, sizeof(subject), "%s_eph.%s", nb->prefix, in->pattern); /* outside the stream's subjects */
    if (in->eph == NULL && natsConnection_Subscribe(&in->eph, nb->nc, subject, rt_nats_on_ephemeral, nb) != NATS_OK)
        in->eph = NULL;
}

static void live_unsubscribe(nb_interest_t *in)
{
    natsSubscription *subs[2] = {in->sub, in->eph};
    for (int i = 0; i < 2; i++) {
        if (subs[i])
            natsSubscription_Unsubscribe(subs[i]);
        natsSubscription_Destroy(subs[i]);
    }
}

void rt_nats_interest(rt_bus_t *bus, rt_str_t pattern, int delta)
{
    natsbus_t *nb = (natsbus_t *)bus;
    pthread_mutex_lock(&nb->interest_lock);
    nb_interest_t *in = rt_map_get(&nb->interest, pattern);
    if (delta > 0) {
        if (in == NULL) {
            in = rt_calloc(1, sizeof(*in) + pattern.len + 1);
            memcpy(in->pattern, pattern.base, pattern.len);
            rt_map_put(&nb->interest, rt_str(in->pattern, pattern.len), in);
            live_subscribe(nb, in);
        }
        in->count++;
    } else if (in && --in->count == 0) {
        rt_map_del(&nb->interest, pattern);
        live_unsubscribe(in);
        /* forget the topics no other interest covers: their SEQs are no longer followed */
        pthread_mutex_lock(&nb->lock);
        size_t b = 0;
        for (rt_map_entry_t *e = rt_map_next(&nb->subjects, NULL, &b), *next; e; e = next) {
            next = rt_map_next(&nb->subjects, e, &b);
            if (!rt_topic_match(rt_cstr(in->pattern), e->key))
                continue;
            int other = 0;
            size_t b2 = 0;
            for (rt_map_entry_t *o = NULL; !other && (o = rt_map_next(&nb->interest, o, &b2)) != NULL;)
                other = rt_topic_match(o->key, e->key);
            if (!other)
                free(rt_map_del(&nb->subjects, e->key));
        }
        pthread_mutex_unlock(&nb->lock);
        free(in);
    }
    pthread_mutex_unlock(&nb->interest_lock);
}

int rt_nats_interest_active(natsbus_t *nb, const rt_str_t *patterns, size_t n)
{
    int active = 1;
    pthread_mutex_lock(&nb->interest_lock);
    for (size_t i = 0; i < n && active; i++) {
        nb_interest_t *in = rt_map_get(&nb->interest, patterns[i]);
        active = in && in->active;
    }
    pthread_mutex_unlock(&nb->interest_lock);
    return active;
}

uint64_t rt_nats_interest_unconfirmed(natsbus_t *nb)
{
    size_t n = 0, b = 0;
    pthread_mutex_lock(&nb->interest_lock);
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nb->interest, e, &b)) != NULL;) {
        nb_interest_t *in = e->value;
        if (in->sub == NULL)
            live_subscribe(nb, in);
        n += !in->active;
    }
    uint64_t gen = nb->interest_gen;
    pthread_mutex_unlock(&nb->interest_lock);
    return n ? gen : 0;
}

void rt_nats_interest_confirm(natsbus_t *nb, uint64_t gen)
{
    size_t b = 0;
    pthread_mutex_lock(&nb->interest_lock);
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nb->interest, e, &b)) != NULL;) {
        nb_interest_t *in = e->value;
        if (in->sub && in->gen <= gen) /* SUBs made meanwhile may have gone out after the request */
            in->active = 1;
    }
    pthread_mutex_unlock(&nb->interest_lock);
}

void rt_nats_interest_head(natsbus_t *nb, const rt_str_t *patterns, size_t n, uint64_t head)
{
    pthread_mutex_lock(&nb->interest_lock);
    for (size_t i = 0; i < n; i++) {
        nb_interest_t *in = rt_map_get(&nb->interest, patterns[i]);
        if (in && head > in->head)
            in->head = head;
    }
    pthread_mutex_unlock(&nb->interest_lock);
}

void rt_nats_live_metrics(natsbus_t *nb, rt_buf_t *out)
{
    pthread_mutex_lock(&nb->interest_lock);
    size_t patterns = nb->interest.count;
    pthread_mutex_unlock(&nb->interest_lock);
    pthread_mutex_lock(&nb->lock);
    uint64_t in = nb->msgs_in, missed = nb->missed, caught = nb->caught_up;
    uint64_t reordered = nb->reordered, late = nb->late, late_max = nb->late_max_ms;
    size_t topics = nb->subjects.count, queued = nb->qlen + nb->nhold;
    pthread_mutex_unlock(&nb->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_bus_messages_in_total Stored messages this node received live (only its clients' topics).\n"
                  "# TYPE rtbroker_bus_messages_in_total counter\nrtbroker_bus_messages_in_total %llu\n"
                  "# HELP rtbroker_nats_consumer_lag Messages received live and not yet handed to the workers.\n"
                  "# TYPE rtbroker_nats_consumer_lag gauge\nrtbroker_nats_consumer_lag %zu\n"
                  "# HELP rtbroker_nats_interest_patterns Topics and patterns this node follows live.\n"
                  "# TYPE rtbroker_nats_interest_patterns gauge\nrtbroker_nats_interest_patterns %zu\n"
                  "# HELP rtbroker_nats_live_topics Topics whose last SEQ this node tracks.\n"
                  "# TYPE rtbroker_nats_live_topics gauge\nrtbroker_nats_live_topics %zu\n"
                  "# HELP rtbroker_nats_missed_fetched_total Live messages missed and fetched from the stream.\n"
                  "# TYPE rtbroker_nats_missed_fetched_total counter\nrtbroker_nats_missed_fetched_total %llu\n"
                  "# HELP rtbroker_nats_caught_up_total Messages fetched after a lost connection.\n"
                  "# TYPE rtbroker_nats_caught_up_total counter\nrtbroker_nats_caught_up_total %llu\n",
                  (unsigned long long)in, queued, patterns, topics, (unsigned long long)missed, (unsigned long long)caught);
    rt_buf_printf(out,
                  "# HELP rtbroker_nats_reordered_total Messages re-published after a later SEQ and put back in order "
                  "(nats.reorder_window).\n"
                  "# TYPE rtbroker_nats_reordered_total counter\nrtbroker_nats_reordered_total %llu\n"
                  "# HELP rtbroker_nats_reordered_late_total Messages that came after a later SEQ was delivered: "
                  "subscribers of patterns skipped them.\n"
                  "# TYPE rtbroker_nats_reordered_late_total counter\nrtbroker_nats_reordered_late_total %llu\n"
                  "# HELP rtbroker_nats_reorder_max_seconds The longest a message came after a later SEQ.\n"
                  "# TYPE rtbroker_nats_reorder_max_seconds gauge\nrtbroker_nats_reorder_max_seconds %.3f\n",
                  (unsigned long long)reordered, (unsigned long long)late, (double)late_max / 1000.0);
}
