/*
 * Retained messages: a ring per topic (bounded by history.max_messages, expired by
 * history.max_age), and replay of every retained message after an id across exact
 * topics and wildcard patterns, merged in SEQ order. Gaps are found from the highest
 * SEQ each topic has evicted, and from topics dropped whole after expiring.
 */
#include <pthread.h>
#include <stdlib.h>

#include "history.h"
#include "map.h"

typedef struct topic_hist {
    rt_msg_t **ring;
    size_t cap, start, count;
    uint64_t dropped_max; /* highest SEQ evicted from this topic */
    rt_str_t name;
    char namebuf[RT_TOPIC_MAX + 1];
} topic_hist_t;

struct rt_history {
    pthread_mutex_t lock;
    rt_map_t topics;
    uint64_t head;          /* last SEQ added */
    uint64_t forgotten_max; /* highest SEQ evicted from a topic that was then dropped */
    size_t max_messages;
    uint64_t max_age_ms;
};

rt_history_t *rt_history_new(void)
{
    rt_history_t *h = rt_calloc(1, sizeof(*h));
    pthread_mutex_init(&h->lock, NULL);
    h->max_messages = 100;
    h->max_age_ms = 3600 * 1000;
    return h;
}

void rt_history_configure(rt_history_t *h, size_t max_messages, uint64_t max_age_ms)
{
    h->max_messages = max_messages;
    h->max_age_ms = max_age_ms;
}

static void evict_front(topic_hist_t *t)
{
    rt_msg_t *m = t->ring[t->start];
    if (m->seq > t->dropped_max)
        t->dropped_max = m->seq;
    rt_msg_unref(m);
    t->ring[t->start] = NULL;
    t->start = (t->start + 1) % t->cap;
    t->count--;
}

static void expire(rt_history_t *h, topic_hist_t *t, uint64_t now)
{
    while (t->count && t->ring[t->start]->time_ms + h->max_age_ms <= now)
        evict_front(t);
}

static void push(rt_history_t *h, topic_hist_t *t, rt_msg_t *m)
{
    if (t->count == h->max_messages)
        evict_front(t);
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
}

void rt_history_add(rt_history_t *h, rt_msg_t *msg)
{
    uint64_t now = rt_wall_ms();
    pthread_mutex_lock(&h->lock);
    topic_hist_t *t = rt_map_get(&h->topics, msg->topic);
    if (t == NULL) {
        t = rt_calloc(1, sizeof(*t));
        memcpy(t->namebuf, msg->topic.base, msg->topic.len);
        t->name = rt_str(t->namebuf, msg->topic.len);
        rt_map_put(&h->topics, t->name, t);
    }
    expire(h, t, now);
    push(h, t, rt_msg_ref(msg));
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

/* Collects t's messages after `after` into r (under the lock). */
static void collect(rt_history_t *h, topic_hist_t *t, rt_replay_t *r, uint64_t after, size_t *cap, uint64_t now)
{
    expire(h, t, now);
    if (t->dropped_max > after)
        r->gap = 1;
    for (size_t i = 0; i < t->count; i++) {
        rt_msg_t *m = t->ring[(t->start + i) % t->cap];
        if (m->seq <= after)
            continue;
        if (r->count == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            r->msgs = rt_realloc(r->msgs, *cap * sizeof(*r->msgs));
        }
        r->msgs[r->count++] = rt_msg_ref(m);
    }
}

void rt_history_replay(rt_history_t *h, rt_str_t epoch, int future_ok, rt_replay_t *r)
{
    size_t cap = 0;
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
        after = 0; /* everything retained, then keep the newest `max` below `before` */
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
            collect(h, t, r, after, &cap, now);
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
                collect(h, t, r, after, &cap, now);
        }
    }
    pthread_mutex_unlock(&h->lock);

    if (r->count > 1)
        qsort(r->msgs, r->count, sizeof(*r->msgs), cmp_seq);
    size_t out = 0; /* drop duplicates from a topic listed twice */
    for (size_t i = 0; i < r->count; i++) {
        if (out && r->msgs[out - 1]->seq == r->msgs[i]->seq)
            rt_msg_unref(r->msgs[i]);
        else
            r->msgs[out++] = r->msgs[i];
    }
    r->count = out;
    if (r->has_before) {
        size_t keep = 0, lost = r->gap; /* in before mode, gap: history older than what is returned was evicted */
        while (keep < r->count && r->msgs[keep]->seq < r->before)
            keep++;
        for (size_t i = keep; i < r->count; i++)
            rt_msg_unref(r->msgs[i]);
        r->count = keep;
        size_t first = r->max && keep > r->max ? keep - r->max : 0;
        for (size_t i = 0; i < first; i++)
            rt_msg_unref(r->msgs[i]);
        if (first > 0)
            memmove(r->msgs, r->msgs + first, (keep - first) * sizeof(*r->msgs));
        r->count = keep - first;
        r->truncated = first > 0;
        r->gap = lost && first == 0;
        return;
    }
    if (r->max && r->count > r->max) {
        for (size_t i = r->max; i < r->count; i++)
            rt_msg_unref(r->msgs[i]);
        r->count = r->max;
        r->truncated = 1;
        r->head = r->msgs[r->count - 1]->seq;
    }
}

static void drop_topic(rt_history_t *h, topic_hist_t *t)
{
    while (t->count)
        evict_front(t);
    if (t->dropped_max > h->forgotten_max)
        h->forgotten_max = t->dropped_max;
    rt_map_del(&h->topics, t->name);
    free(t->ring);
    free(t);
}

void rt_history_tick(rt_history_t *h)
{
    uint64_t now = rt_wall_ms();
    pthread_mutex_lock(&h->lock);
    size_t b = 0;
    rt_map_entry_t *e = rt_map_next(&h->topics, NULL, &b);
    while (e != NULL) {
        topic_hist_t *t = e->value;
        rt_map_entry_t *next = rt_map_next(&h->topics, e, &b); /* taken before t's entry may go */
        expire(h, t, now);
        if (t->count == 0)
            drop_topic(h, t);
        e = next;
    }
    pthread_mutex_unlock(&h->lock);
}

void rt_history_clear(rt_history_t *h)
{
    pthread_mutex_lock(&h->lock);
    size_t b = 0;
    rt_map_entry_t *e = rt_map_next(&h->topics, NULL, &b);
    while (e != NULL) {
        rt_map_entry_t *next = rt_map_next(&h->topics, e, &b);
        drop_topic(h, e->value);
        e = next;
    }
    h->head = 0;
    h->forgotten_max = 0;
    pthread_mutex_unlock(&h->lock);
}

void rt_history_stats(rt_history_t *h, size_t *topics, size_t *messages)
{
    pthread_mutex_lock(&h->lock);
    *topics = h->topics.count;
    *messages = 0;
    size_t b = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&h->topics, e, &b)) != NULL;)
        *messages += ((topic_hist_t *)e->value)->count;
    pthread_mutex_unlock(&h->lock);
}

void rt_replay_release(rt_replay_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        rt_msg_unref(r->msgs[i]);
    free(r->msgs);
    r->msgs = NULL;
    r->count = 0;
}
