/*
 * The embedded memory bus: one global SEQ under one lock, a ring of retained messages per
 * topic (history.max_messages, history.max_age), Idempotency-Key de-duplication, and the
 * handoff to every worker's inbox made under the same lock so that each inbox sees
 * messages in SEQ order. EPOCH is random per process: a restart loses the history.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "hub.h"
#include "map.h"

typedef struct topic_hist {
    rt_msg_t **ring;
    size_t cap, start, count;
    uint64_t dropped_max; /* highest SEQ evicted from this topic */
    rt_str_t name;
    char namebuf[RT_TOPIC_MAX + 1];
} topic_hist_t;

typedef struct dedup {
    struct dedup *next; /* FIFO by time */
    uint64_t at_ms;
    rt_str_t key;       /* topic '\0' idempotency key */
    char id[RT_ID_MAX + 1];
    char keybuf[];
} dedup_t;

typedef struct membus {
    rt_bus_t super;
    pthread_mutex_t lock;
    uint64_t seq;
    uint64_t forgotten_max; /* highest SEQ evicted from a topic that was then dropped */
    rt_map_t topics;
    rt_map_t dedup;
    dedup_t *dedup_head, *dedup_tail;
    size_t max_messages;
    uint64_t max_age_ms, dedup_ms;
    char epoch[16];
} membus_t;

static int mb_start(rt_bus_t *bus, char *err, size_t errlen)
{
    membus_t *mb = (membus_t *)bus;
    (void)err, (void)errlen;
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
    unsigned char rnd[8] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
        uint64_t t = rt_wall_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(rnd, &t, sizeof(rnd));
    }
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 8; i++)
        mb->epoch[i] = alphabet[rnd[i] % 32];
    mb->epoch[8] = '\0';
    mb->max_messages = (size_t)rt_cfg_int("history.max_messages");
    mb->max_age_ms = (uint64_t)rt_cfg_int("history.max_age");
    mb->dedup_ms = (uint64_t)rt_cfg_int("publish.dedup_window");
    return 0;
}

static void hist_evict_front(membus_t *mb, topic_hist_t *h)
{
    (void)mb;
    rt_msg_t *m = h->ring[h->start];
    if (m->seq > h->dropped_max)
        h->dropped_max = m->seq;
    rt_msg_unref(m);
    h->ring[h->start] = NULL;
    h->start = (h->start + 1) % h->cap;
    h->count--;
}

static void hist_expire(membus_t *mb, topic_hist_t *h, uint64_t now)
{
    while (h->count && h->ring[h->start]->time_ms + mb->max_age_ms <= now)
        hist_evict_front(mb, h);
}

static void hist_push(membus_t *mb, topic_hist_t *h, rt_msg_t *m)
{
    if (h->count == mb->max_messages)
        hist_evict_front(mb, h);
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        if (cap > mb->max_messages)
            cap = mb->max_messages;
        rt_msg_t **ring = rt_calloc(cap, sizeof(*ring));
        for (size_t i = 0; i < h->count; i++)
            ring[i] = h->ring[(h->start + i) % h->cap];
        free(h->ring);
        h->ring = ring, h->cap = cap, h->start = 0;
    }
    h->ring[(h->start + h->count) % h->cap] = m;
    h->count++;
}

static void dedup_expire(membus_t *mb, uint64_t now)
{
    while (mb->dedup_head && mb->dedup_head->at_ms + mb->dedup_ms <= now) {
        dedup_t *d = mb->dedup_head;
        mb->dedup_head = d->next;
        if (mb->dedup_head == NULL)
            mb->dedup_tail = NULL;
        rt_map_del(&mb->dedup, d->key);
        free(d);
    }
}

static void mb_publish(rt_bus_t *bus, rt_msg_t *msg, rt_str_t idem_key, rt_publish_cb cb, void *ctx)
{
    membus_t *mb = (membus_t *)bus;
    char key[RT_TOPIC_MAX + 1 + 128], id[RT_ID_MAX + 1];
    size_t keylen = 0;
    uint64_t now = rt_wall_ms();

    pthread_mutex_lock(&mb->lock);
    if (idem_key.len && mb->dedup_ms) {
        dedup_expire(mb, now);
        memcpy(key, msg->topic.base, msg->topic.len);
        key[msg->topic.len] = '\0';
        memcpy(key + msg->topic.len + 1, idem_key.base, idem_key.len);
        keylen = msg->topic.len + 1 + idem_key.len;
        dedup_t *d = rt_map_get(&mb->dedup, rt_str(key, keylen));
        if (d) {
            snprintf(id, sizeof(id), "%s", d->id);
            pthread_mutex_unlock(&mb->lock);
            rt_msg_unref(msg);
            cb(ctx, RT_OK, rt_cstr(id));
            return;
        }
    }
    rt_msg_set_id(msg, rt_cstr(mb->epoch), ++mb->seq);
    topic_hist_t *h = rt_map_get(&mb->topics, msg->topic);
    if (h == NULL) {
        h = rt_calloc(1, sizeof(*h));
        memcpy(h->namebuf, msg->topic.base, msg->topic.len);
        h->name = rt_str(h->namebuf, msg->topic.len);
        h->dropped_max = 0;
        rt_map_put(&mb->topics, h->name, h);
    }
    hist_expire(mb, h, now);
    hist_push(mb, h, rt_msg_ref(msg));
    if (keylen) {
        dedup_t *d = rt_malloc(sizeof(*d) + keylen);
        d->next = NULL;
        d->at_ms = now;
        memcpy(d->keybuf, key, keylen);
        d->key = rt_str(d->keybuf, keylen);
        memcpy(d->id, msg->id.base, msg->id.len);
        d->id[msg->id.len] = '\0';
        if (mb->dedup_tail)
            mb->dedup_tail->next = d;
        else
            mb->dedup_head = d;
        mb->dedup_tail = d;
        rt_map_put(&mb->dedup, d->key, d);
    }
    memcpy(id, msg->id.base, msg->id.len);
    id[msg->id.len] = '\0';
    rt_hub_broadcast(msg); /* under the lock: inboxes receive in SEQ order */
    pthread_mutex_unlock(&mb->lock);
    rt_msg_unref(msg);
    cb(ctx, RT_OK, rt_cstr(id));
}

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = (*(rt_msg_t *const *)a)->seq, y = (*(rt_msg_t *const *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Collects h's messages after `after` into r (under the lock). */
static void collect(membus_t *mb, topic_hist_t *h, rt_replay_t *r, uint64_t after, size_t *cap, uint64_t now)
{
    hist_expire(mb, h, now);
    if (r->has_since && h->dropped_max > after)
        r->gap = 1;
    for (size_t i = 0; i < h->count; i++) {
        rt_msg_t *m = h->ring[(h->start + i) % h->cap];
        if (m->seq <= after)
            continue;
        if (r->count == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            r->msgs = rt_realloc(r->msgs, *cap * sizeof(*r->msgs));
        }
        r->msgs[r->count++] = rt_msg_ref(m);
    }
}

static int mb_replay(rt_bus_t *bus, rt_replay_t *r)
{
    membus_t *mb = (membus_t *)bus;
    size_t cap = 0;
    uint64_t now = rt_wall_ms();
    r->msgs = NULL, r->count = 0, r->gap = 0, r->truncated = 0;

    pthread_mutex_lock(&mb->lock);
    r->head = mb->seq;
    if (!r->has_since) {
        pthread_mutex_unlock(&mb->lock);
        return RT_OK;
    }
    uint64_t after = r->since.seq;
    if (!rt_str_eqc(r->since.epoch, mb->epoch) || after > mb->seq) {
        r->gap = 1;
        after = 0;
    } else if (mb->forgotten_max > after) {
        r->gap = 1;
    }
    int any_wild = 0;
    for (size_t i = 0; i < r->npatterns; i++) {
        int wild = 0;
        rt_topic_check(r->patterns[i], 1, &wild);
        if (wild) {
            any_wild = 1;
            continue;
        }
        topic_hist_t *h = rt_map_get(&mb->topics, r->patterns[i]);
        if (h)
            collect(mb, h, r, after, &cap, now);
    }
    if (any_wild) {
        size_t b = 0;
        for (rt_map_entry_t *e = NULL; (e = rt_map_next(&mb->topics, e, &b)) != NULL;) {
            topic_hist_t *h = e->value;
            int exact_listed = 0, matched = 0;
            for (size_t i = 0; i < r->npatterns; i++) {
                if (rt_str_eq(r->patterns[i], h->name))
                    exact_listed = 1;
                else if (rt_topic_match(r->patterns[i], h->name))
                    matched = 1;
            }
            if (matched && !exact_listed)
                collect(mb, h, r, after, &cap, now);
        }
    }
    pthread_mutex_unlock(&mb->lock);

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
    if (r->max && r->count > r->max) {
        for (size_t i = r->max; i < r->count; i++)
            rt_msg_unref(r->msgs[i]);
        r->count = r->max;
        r->truncated = 1;
        r->head = r->msgs[r->count - 1]->seq;
    }
    return RT_OK;
}

static void mb_tick(rt_bus_t *bus)
{
    membus_t *mb = (membus_t *)bus;
    uint64_t now = rt_wall_ms();
    pthread_mutex_lock(&mb->lock);
    dedup_expire(mb, now);
    size_t b = 0;
    rt_map_entry_t *e = rt_map_next(&mb->topics, NULL, &b);
    while (e != NULL) {
        topic_hist_t *h = e->value;
        rt_map_entry_t *next = rt_map_next(&mb->topics, e, &b);
        hist_expire(mb, h, now);
        if (h->count == 0) {
            if (h->dropped_max > mb->forgotten_max)
                mb->forgotten_max = h->dropped_max;
            /* the entry may be freed by rt_map_del; `next` was taken before */
            rt_map_del(&mb->topics, h->name);
            free(h->ring);
            free(h);
        }
        e = next;
    }
    pthread_mutex_unlock(&mb->lock);
}

static rt_str_t mb_epoch(rt_bus_t *bus) { return rt_cstr(((membus_t *)bus)->epoch); }
static int mb_ready(rt_bus_t *bus)
{
    (void)bus;
    return 1;
}

static void mb_metrics(rt_bus_t *bus, rt_buf_t *out)
{
    membus_t *mb = (membus_t *)bus;
    pthread_mutex_lock(&mb->lock);
    uint64_t seq = mb->seq;
    size_t topics = mb->topics.count, retained = 0;
    size_t b = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&mb->topics, e, &b)) != NULL;)
        retained += ((topic_hist_t *)e->value)->count;
    pthread_mutex_unlock(&mb->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_bus_up Whether the bus is connected (memory: always).\n# TYPE rtbroker_bus_up gauge\n"
                  "rtbroker_bus_up{bus=\"memory\"} 1\n"
                  "# HELP rtbroker_bus_seq The last SEQ assigned.\n# TYPE rtbroker_bus_seq gauge\nrtbroker_bus_seq %llu\n"
                  "# HELP rtbroker_history_topics Topics with retained history.\n# TYPE rtbroker_history_topics gauge\n"
                  "rtbroker_history_topics %zu\n"
                  "# HELP rtbroker_history_messages Retained messages.\n# TYPE rtbroker_history_messages gauge\n"
                  "rtbroker_history_messages %zu\n",
                  (unsigned long long)seq, topics, retained);
}

static void mb_stop(rt_bus_t *bus) { (void)bus; }

static const rt_bus_ops_t membus_ops = {"memory", mb_start, mb_stop, mb_publish, mb_replay, mb_epoch, mb_ready, mb_tick, mb_metrics};

rt_bus_t *rt_bus_memory_new(void)
{
    membus_t *mb = rt_calloc(1, sizeof(*mb));
    mb->super.ops = &membus_ops;
    pthread_mutex_init(&mb->lock, NULL);
    return &mb->super;
}

void rt_replay_release(rt_replay_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        rt_msg_unref(r->msgs[i]);
    free(r->msgs);
    r->msgs = NULL;
    r->count = 0;
}
