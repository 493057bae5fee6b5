/*
 * Retained messages: a ring per topic (bounded by history.max_messages, expired by
 * history.max_age), whole-broker caps (history.max_bytes, history.max_topics: the oldest
 * message, the least recently published topic go first), and replay of the retained
 * messages after an id across exact topics and wildcard patterns, merged in SEQ order
 * with each request's limit applied per topic first. Gaps are found from the highest SEQ
 * each topic has evicted, and from topics dropped whole. Also drops the encodings of
 * messages that nobody but the history holds (rt_msg_trim).
 */
#include <pthread.h>
#include <stdlib.h>

#include "history.h"
#include "map.h"

enum { CAUSE_MESSAGES, CAUSE_AGE, CAUSE_BYTES, CAUSE_TOPICS, NCAUSES };
static const char *const cause_names[NCAUSES] = {"max_messages", "max_age", "max_bytes", "max_topics"};

typedef struct topic_hist {
    rt_msg_t **ring;
    size_t cap, start, count;
    uint64_t dropped_max; /* highest SEQ evicted from this topic */
    struct topic_hist *older, *newer; /* by last publish, for history.max_topics */
    rt_str_t name;
    char namebuf[RT_TOPIC_MAX + 1];
} topic_hist_t;

struct rt_history {
    pthread_mutex_t lock;
    rt_map_t topics;
    topic_hist_t *lru, *mru;   /* topics least and most recently published to */
    rt_msg_t *oldest, *newest; /* every retained message, in SEQ order (rt_msg_t.older/newer) */
    uint64_t head;             /* last SEQ added */
    uint64_t forgotten_max;    /* highest SEQ evicted from a topic that was then dropped */
    size_t messages, bytes;
    size_t max_messages, max_bytes, max_topics;
    uint64_t max_age_ms;
    uint64_t evicted[NCAUSES]; /* messages evicted, by the limit that evicted them */
    uint64_t topics_evicted;   /* topics dropped whole for history.max_topics */
};

rt_history_t *rt_history_new(void)
{
    rt_history_t *h = rt_calloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->max_messages = 100;
    h->max_age_ms = 3600 * 1000;
    h->max_bytes = SIZE_MAX;
    h->max_topics = SIZE_MAX;
    return h;
}

void rt_history_configure(rt_history_t *h, size_t max_messages, uint64_t max_age_ms, size_t max_bytes, size_t max_topics)
{
    h->max_messages = max_messages;
    h->max_age_ms = max_age_ms;
    h->max_bytes = max_bytes;
    h->max_topics = max_topics;
}

/* What a retained message costs the broker, for history.max_bytes. */
static size_t msg_cost(const rt_msg_t *m)
{
    return sizeof(*m) + m->topic.len + m->event.len + m->content_type.len + m->data.len;
}

static void evict_front(rt_history_t *h, topic_hist_t *t, int cause)
{
    rt_msg_t *m = t->ring[t->start];
    if (m->seq > t->dropped_max)
        t->dropped_max = m->seq;
    *(m->older ? &m->older->newer : &h->oldest) = m->newer;
    *(m->newer ? &m->newer->older : &h->newest) = m->older;
    m->older = m->newer = NULL;
    atomic_store_explicit(&m->keeper, NULL, memory_order_relaxed);
    h->messages--;
    h->bytes -= msg_cost(m);
    if (cause < NCAUSES)
        h->evicted[cause]++;
    rt_msg_unref(m);
    t->ring[t->start] = NULL;
    t->start = (t->start + 1) % t->cap;
    t->count--;
}

static void expire(rt_history_t *h, topic_hist_t *t, uint64_t now)
{
    while (t->count && t->ring[t->start]->time_ms + h->max_age_ms <= now)
        evict_front(h, t, CAUSE_AGE);
}

static void push(rt_history_t *h, topic_hist_t *t, rt_msg_t *m)
{
    if (t->count == h->max_messages)
        evict_front(h, t, CAUSE_MESSAGES);
    if (t->count == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        if (cap > h->max_messages)
            cap = h->max_messages;
        rt_msg_t **ring = rt_calloc(cap, sizeof(*ring));
        for (size_t i = 0; i < t->count; i++)
            ring[i] = t->ring[(t->start + i) % t->cap];
        free(t->ring);
        t->ring = ring, t->cap = cap, t->start = 0;
    }
    t->ring[(t->start + t->count) % t->cap] = m;
    t->count++;
    atomic_store_explicit(&m->keeper, h, memory_order_relaxed);
    m->older = h->newest, m->newer = NULL;
    *(h->newest ? &h->newest->newer : &h->oldest) = m;
    h->newest = m;
    h->messages++;
    h->bytes += msg_cost(m);
}

static void lru_unlink(rt_history_t *h, topic_hist_t *t)
{
    *(t->older ? &t->older->newer : &h->lru) = t->newer;
    *(t->newer ? &t->newer->older : &h->mru) = t->older;
    t->older = t->newer = NULL;
}

static void lru_append(rt_history_t *h, topic_hist_t *t)
{
    t->older = h->mru;
    *(h->mru ? &h->mru->newer : &h->lru) = t;
    h->mru = t;
}

static void drop_topic(rt_history_t *h, topic_hist_t *t, int cause)
{
    while (t->count)
        evict_front(h, t, cause);
    if (t->dropped_max > h->forgotten_max)
        h->forgotten_max = t->dropped_max;
    lru_unlink(h, t);
    rt_map_del(&h->topics, t->name);
    free(t->ring);
    free(t);
}

/* Drops the encodings of messages that only the history holds (see rt_msg_unref). Under the lock. */
static void trim_encodings(rt_history_t *h)
{
    for (rt_msg_t *m = rt_msg_trim_take(), *next; m != NULL; m = next) {
        next = m->trim_next;
        rt_msg_trim(m, h);
    }
}

void rt_history_add(rt_history_t *h, rt_msg_t *msg)
{
    uint64_t now = rt_wall_ms();
    pthread_mutex_lock(&h->lock);
    trim_encodings(h);
    topic_hist_t *t = rt_map_get(&h->topics, msg->topic);
    if (t == NULL) {
        if (h->topics.count >= h->max_topics && h->lru != NULL) {
            h->topics_evicted++;
            drop_topic(h, h->lru, CAUSE_TOPICS);
        }
        t = rt_calloc(1, sizeof(*t));
        memcpy(t->namebuf, msg->topic.base, msg->topic.len);
        t->name = rt_str(t->namebuf, msg->topic.len);
        rt_map_put(&h->topics, t->name, t);
    } else {
        lru_unlink(h, t);
    }
    lru_append(h, t);
    expire(h, t, now);
    push(h, t, rt_msg_ref(msg));
    while (h->bytes > h->max_bytes && h->oldest != msg) { /* the newest stays, whatever its size */
        topic_hist_t *o = rt_map_get(&h->topics, h->oldest->topic);
        if (o == NULL || o->count == 0 || o->ring[o->start] != h->oldest)
            break; /* cannot happen: SEQs arrive in order, so the oldest is at the front of its topic */
        evict_front(h, o, CAUSE_BYTES);
    }
    if (msg->seq > h->head)
        h->head = msg->seq;
    pthread_mutex_unlock(&h->lock);
}

uint64_t rt_history_head(rt_history_t *h)
{
    pthread_mutex_lock(&h->lock);
    uint64_t head = h->head;
    pthread_mutex_unlock(&h->lock);
    return head;
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = (*(rt_msg_t *const *)a)->seq, y = (*(rt_msg_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Sorts r's messages, drops duplicates (a topic listed twice) and keeps `keep` of them: the oldest, or the newest
 * when paging back. Sets *cut when it dropped any retained message. */
static void compact(rt_replay_t *r, size_t keep, int *cut)
{
    if (r->count > 1)
        qsort(r->msgs, r->count, sizeof(*r->msgs), cmp_seq);
    size_t out = 0;
    for (size_t i = 0; i < r->count; i++) {
        if (out && r->msgs[out - 1]->seq == r->msgs[i]->seq)
            rt_msg_unref(r->msgs[i]);
        else
            r->msgs[out++] = r->msgs[i];
    }
    r->count = out;
    if (r->count <= keep)
        return;
    *cut = 1;
    size_t first = r->has_before ? r->count - keep : 0;
    for (size_t i = 0; i < r->count; i++)
        if (i < first || i >= first + keep)
            rt_msg_unref(r->msgs[i]);
    if (first > 0)
        memmove(r->msgs, r->msgs + first, keep * sizeof(*r->msgs));
    r->count = keep;
}

/* The index in t's ring of its first message with SEQ > seq (t->count when none). */
static size_t first_after(const topic_hist_t *t, uint64_t seq)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->ring[(t->start + mid) % t->cap]->seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Collects into r, under the lock, t's messages after `after` (and before r->before when paging back): at most
 * r->max of them, so that the work follows the limit and not what is retained. */
static void collect(rt_history_t *h, topic_hist_t *t, rt_replay_t *r, uint64_t after, size_t *cap, uint64_t now, int *cut)
{
    expire(h, t, now);
    if (t->dropped_max > after)
        r->gap = 1;
    size_t lo = first_after(t, after), hi = t->count;
    if (r->has_before)
        hi = r->before ? first_after(t, r->before - 1) : 0;
    if (hi < lo)
        hi = lo;
    if (r->max && hi - lo > r->max) {
        *cut = 1;
        if (r->has_before)
            lo = hi - r->max;
        else
            hi = lo + r->max;
    }
    if (r->count + (hi - lo) > *cap) {
        *cap = r->count + (hi - lo) > *cap * 2 ? r->count + (hi - lo) : *cap * 2;
        r->msgs = rt_realloc(r->msgs, *cap * sizeof(*r->msgs));
    }
    for (size_t i = lo; i < hi; i++)
        r->msgs[r->count++] = rt_msg_ref(t->ring[(t->start + i) % t->cap]);
    if (r->max && r->count >= 2 * r->max && r->count >= 64)
        compact(r, r->max, cut); /* a wildcard over many topics holds about 2 × max, not everything matched */
}

void rt_history_replay(rt_history_t *h, rt_str_t epoch, int future_ok, rt_replay_t *r)
{
    size_t cap = 0;
    int cut = 0;
    uint64_t now = rt_wall_ms();
    r->msgs = NULL, r->count = 0, r->gap = 0, r->truncated = 0;

    pthread_mutex_lock(&h->lock);
    r->head = r->after = h->head;
    if (!r->has_since && !r->has_before) {
        pthread_mutex_unlock(&h->lock);
        return;
    }
    uint64_t after = r->since.seq;
    if (r->has_before) {
        after = 0; /* the newest `max` retained below `before` */
        r->gap = h->forgotten_max > 0;
    } else if (!rt_str_eq(r->since.epoch, epoch)) {
        r->gap = 1;
        after = 0;
    } else if (after > h->head) {
        if (future_ok) { /* nothing retained here is new to the client; the rest arrives live */
            r->head = r->after = after;
            pthread_mutex_unlock(&h->lock);
            return;
        }
        r->gap = 1; /* an id this history never gave */
        after = 0;
    } else if (h->forgotten_max > after) {
        r->gap = 1;
    }
    r->after = after;
    int any_wild = 0;
    for (size_t i = 0; i < r->npatterns; i++) {
        int wild = 0;
        rt_topic_check(r->patterns[i], 1, &wild);
        if (wild) {
            any_wild = 1;
            continue;
        }
        topic_hist_t *t = rt_map_get(&h->topics, r->patterns[i]);
        if (t)
            collect(h, t, r, after, &cap, now, &cut);
    }
    if (any_wild) {
        size_t b = 0;
        for (rt_map_entry_t *e = NULL; (e = rt_map_next(&h->topics, e, &b)) != NULL;) {
            topic_hist_t *t = e->value;
            int exact_listed = 0, matched = 0;
            for (size_t i = 0; i < r->npatterns; i++) {
                if (rt_str_eq(r->patterns[i], t->name))
                    exact_listed = 1;
                else if (rt_topic_match(r->patterns[i], t->name))
                    matched = 1;
            }
            if (matched && !exact_listed)
                collect(h, t, r, after, &cap, now, &cut);
        }
    }
    pthread_mutex_unlock(&h->lock);

    compact(r, r->max ? r->max : SIZE_MAX, &cut);
    if (r->has_before) {
        /* gap: history older than what is returned was evicted; truncated: older messages are still retained */
        r->truncated = cut;
        r->gap = r->gap && !cut;
        return;
    }
    if (cut) { /* every message left out is after the last one returned */
        r->truncated = 1;
        r->head = r->msgs[r->count - 1]->seq;
    }
}

void rt_history_tick(rt_history_t *h)
{
    uint64_t now = rt_wall_ms();
    pthread_mutex_lock(&h->lock);
    trim_encodings(h);
    size_t b = 0;
    rt_map_entry_t *e = rt_map_next(&h->topics, NULL, &b);
    while (e != NULL) {
        topic_hist_t *t = e->value;
        rt_map_entry_t *next = rt_map_next(&h->topics, e, &b); /* taken before t's entry may go */
        expire(h, t, now);
        if (t->count == 0)
            drop_topic(h, t, CAUSE_AGE);
        e = next;
    }
    pthread_mutex_unlock(&h->lock);
}

void rt_history_clear(rt_history_t *h)
{
    pthread_mutex_lock(&h->lock);
    trim_encodings(h);
    while (h->lru != NULL)
        drop_topic(h, h->lru, NCAUSES); /* lost, not evicted: not counted */
    h->head = 0;
    h->forgotten_max = 0;
    pthread_mutex_unlock(&h->lock);
}

void rt_history_metrics(rt_history_t *h, rt_buf_t *out)
{
    pthread_mutex_lock(&h->lock);
    size_t topics = h->topics.count, messages = h->messages, bytes = h->bytes;
    uint64_t evicted[NCAUSES], topics_evicted = h->topics_evicted;
    memcpy(evicted, h->evicted, sizeof(evicted));
    pthread_mutex_unlock(&h->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_history_topics Topics with retained history.\n# TYPE rtbroker_history_topics gauge\n"
                  "rtbroker_history_topics %zu\n"
                  "# HELP rtbroker_history_max_topics history.max_topics.\n# TYPE rtbroker_history_max_topics gauge\n"
                  "rtbroker_history_max_topics %zu\n"
                  "# HELP rtbroker_history_messages Retained messages.\n# TYPE rtbroker_history_messages gauge\n"
                  "rtbroker_history_messages %zu\n"
                  "# HELP rtbroker_history_bytes Bytes held by retained messages (as history.max_bytes counts them).\n"
                  "# TYPE rtbroker_history_bytes gauge\nrtbroker_history_bytes %zu\n"
                  "# HELP rtbroker_history_max_bytes history.max_bytes.\n# TYPE rtbroker_history_max_bytes gauge\n"
                  "rtbroker_history_max_bytes %zu\n"
                  "# HELP rtbroker_history_topics_evicted_total Topics dropped whole to stay within history.max_topics.\n"
                  "# TYPE rtbroker_history_topics_evicted_total counter\nrtbroker_history_topics_evicted_total %llu\n"
                  "# HELP rtbroker_encoding_cache_bytes Bytes of per-transport encodings cached on messages.\n"
                  "# TYPE rtbroker_encoding_cache_bytes gauge\nrtbroker_encoding_cache_bytes %zu\n"
                  "# HELP rtbroker_history_evicted_total Retained messages evicted, by the limit that evicted them.\n"
                  "# TYPE rtbroker_history_evicted_total counter\n",
                  topics, h->max_topics, messages, bytes, h->max_bytes, (unsigned long long)topics_evicted,
                  rt_msg_cached_bytes());
    for (int i = 0; i < NCAUSES; i++)
        rt_buf_printf(out, "rtbroker_history_evicted_total{cause=\"%s\"} %llu\n", cause_names[i],
                      (unsigned long long)evicted[i]);
}

void rt_replay_release(rt_replay_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        rt_msg_unref(r->msgs[i]);
    free(r->msgs);
    r->msgs = NULL;
    r->count = 0;
}
