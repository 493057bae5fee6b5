/*
 * The NATS bus's history cache (history.cache_bytes): per exact topic, a SEQ range [lo, hi]
 * and every message of the topic the stream had in it, so that repeated resumes, replays and
 * /history reads of the same topics skip JetStream. Filled by reads from JetStream
 * (bus_nats_fetch.c) and by live delivery when a message's Nats-Last-Sequence shows that
 * nothing of its topic came between (bus_nats_live.c). A range is only ever what was read
 * or received whole; a request it does not cover goes (in part) to JetStream. Entries hold
 * at most history.max_messages (as the stream does per topic); least recently used entries
 * go first past the byte bound. One lock, taken by the fetch and live threads, never with
 * another lock held inside it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "bus_nats.h"
#include "config.h"
#include "namespace.h"

typedef struct centry {
    struct centry *newer, *older; /* LRU list */
    char epoch[16];
    uint64_t lo, hi;   /* every message of the topic with lo <= SEQ <= hi that the stream retains is in msgs */
    int floor;         /* it held history.max_messages: the stream retains nothing of the topic before lo */
    rt_msg_t **msgs;   /* ascending SEQ */
    size_t n, cap, bytes;
    char topic[];
} centry_t;

struct nb_cache {
    pthread_mutex_t lock;
    rt_map_t topics; /* topic -> centry_t */
    centry_t *newest, *oldest;
    size_t bytes, limit, max_msgs;
    int64_t max_age_ms;
    uint64_t hits, misses, evictions;
};

static size_t msg_bytes(const rt_msg_t *m)
{
    return sizeof(*m) + sizeof(m) + m->topic.len + m->event.len + m->content_type.len + m->data.len;
}

void rt_nats_cache_init(natsbus_t *nb)
{
    nb_cache_t *c = rt_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    c->limit = (size_t)rt_cfg_int("history.cache_bytes");
    c->max_msgs = (size_t)rt_cfg_int("history.max_messages");
    c->max_age_ms = rt_cfg_int("history.max_age");
    nb->cache = c;
}

static void unlink_entry(nb_cache_t *c, centry_t *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void touch(nb_cache_t *c, centry_t *e)
{
    if (c->newest == e)
        return;
    if (e->newer || e->older || c->oldest == e)
        unlink_entry(c, e);
    e->older = c->newest;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (c->oldest == NULL)
        c->oldest = e;
}

static void drop_entry(nb_cache_t *c, centry_t *e)
{
    unlink_entry(c, e);
    rt_map_del(&c->topics, rt_cstr(e->topic));
    c->bytes -= e->bytes;
    for (size_t i = 0; i < e->n; i++)
        rt_msg_unref(e->msgs[i]);
    free(e->msgs);
    free(e);
}

/* Past the byte bound: the least recently used entries go (the newest too, if it alone is larger). */
static void evict(nb_cache_t *c)
{
    while (c->bytes > c->limit && c->oldest) {
        drop_entry(c, c->oldest);
        c->evictions++;
    }
}

void rt_nats_cache_free(natsbus_t *nb)
{
    nb_cache_t *c = nb->cache;
    if (c == NULL)
        return;
    while (c->oldest)
        drop_entry(c, c->oldest);
    rt_map_free(&c->topics);
    pthread_mutex_destroy(&c->lock);
    free(c);
    nb->cache = NULL;
}

int rt_nats_cache_enabled(natsbus_t *nb) { return nb->cache && nb->cache->limit > 0; }

void rt_nats_cache_clear(natsbus_t *nb)
{
    nb_cache_t *c = nb->cache;
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    while (c->oldest)
        drop_entry(c, c->oldest);
    pthread_mutex_unlock(&c->lock);
}

size_t rt_nats_cache_forget(natsbus_t *nb, rt_str_t topic)
{
    nb_cache_t *c = nb->cache;
    size_t n = 0;
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->lock);
    centry_t *e = rt_map_get(&c->topics, topic);
    if (e) {
        n = e->n;
        drop_entry(c, e);
    }
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* The entry of topic in this epoch, or NULL (one of another epoch is dropped). Under c->lock. */
static centry_t *find(nb_cache_t *c, const char *epoch, rt_str_t topic)
{
    centry_t *e = rt_map_get(&c->topics, topic);
    if (e && strcmp(e->epoch, epoch) != 0) {
        drop_entry(c, e);
        e = NULL;
    }
    return e;
}

/* The topic's retention: the global history.* or its namespace's. */
static void limits_of(const nb_cache_t *c, rt_str_t topic, size_t *max_msgs, uint64_t *max_age_ms)
{
    *max_msgs = c->max_msgs;
    *max_age_ms = (uint64_t)c->max_age_ms;
    rt_ns_history(topic, max_msgs, max_age_ms);
}

int rt_nats_cache_get(natsbus_t *nb, const char *epoch, rt_str_t topic, uint64_t from, uint64_t to, size_t max,
                      rt_msg_t ***msgs, size_t *n, size_t *cap, int *more, uint64_t *upto)
{
    nb_cache_t *c = nb->cache;
    *upto = from - 1;
    pthread_mutex_lock(&c->lock);
    centry_t *e = find(c, epoch, topic);
    if (e == NULL || !(e->lo <= from || e->floor) || from > e->hi + 1) { /* nothing of [from, ...] is known here */
        c->misses++;
        pthread_mutex_unlock(&c->lock);
        return -1;
    }
    touch(c, e);
    size_t i = 0, lo = 0, hi = e->n; /* the first message at or after from */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (e->msgs[mid]->seq < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t keep;
    uint64_t age, now = rt_wall_ms();
    limits_of(c, topic, &keep, &age); /* once per read: the namespace lookup walks the table */
    size_t got = 0;
    for (i = lo; i < e->n && e->msgs[i]->seq <= to; i++) {
        if (e->msgs[i]->time_ms + age <= now)
            continue; /* past its max_age: the stream dropped it too */
        if (max && got == max) { /* the first max after from are all here */
            *more = 1;
            c->hits++;
            pthread_mutex_unlock(&c->lock);
            return 1;
        }
        if (*n == *cap) {
            *cap = *cap ? *cap * 2 : 64;
            *msgs = rt_realloc(*msgs, *cap * sizeof(**msgs));
        }
        (*msgs)[(*n)++] = rt_msg_ref(e->msgs[i]);
        got++;
    }
    int covered = to <= e->hi;
    if (covered)
        c->hits++;
    else
        *upto = e->hi; /* the caller reads (hi, to] from JetStream and counts a hit or a miss */
    pthread_mutex_unlock(&c->lock);
    return covered;
}

void rt_nats_cache_count(natsbus_t *nb, int hit)
{
    nb_cache_t *c = nb->cache;
    pthread_mutex_lock(&c->lock);
    if (hit)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->lock);
}

/* Keeps the newest history.max_messages (its namespace's), as the stream does; what goes before them is then known
 * gone. */
static void cap_entry(nb_cache_t *c, centry_t *e)
{
    size_t keep;
    uint64_t age;
    limits_of(c, rt_cstr(e->topic), &keep, &age);
    if (e->n <= keep)
        return;
    size_t drop = e->n - keep;
    e->lo = e->msgs[drop - 1]->seq + 1; /* read before the unref below may free it */
    for (size_t i = 0; i < drop; i++) {
        e->bytes -= msg_bytes(e->msgs[i]);
        c->bytes -= msg_bytes(e->msgs[i]);
        rt_msg_unref(e->msgs[i]);
    }
    memmove(e->msgs, e->msgs + drop, (e->n - drop) * sizeof(*e->msgs));
    e->n -= drop;
    e->floor = 1;
}

static centry_t *new_entry(nb_cache_t *c, const char *epoch, rt_str_t topic, uint64_t lo, uint64_t hi)
{
    centry_t *e = rt_calloc(1, sizeof(*e) + topic.len + 1);
    memcpy(e->topic, topic.base, topic.len);
    snprintf(e->epoch, sizeof(e->epoch), "%s", epoch);
    e->lo = lo, e->hi = hi;
    rt_map_put(&c->topics, rt_str(e->topic, topic.len), e);
    touch(c, e);
    return e;
}

/* Adds msgs (ascending, of the entry's topic) that the entry lacks, in SEQ order. */
static void merge(nb_cache_t *c, centry_t *e, rt_msg_t *const *msgs, size_t n)
{
    if (n == 0)
        return;
    if (e->n == 0 || msgs[0]->seq > e->msgs[e->n - 1]->seq) { /* all newer (live delivery): appended in place */
        if (e->n + n > e->cap) {
            e->cap = (e->n + n) * 2;
            e->msgs = rt_realloc(e->msgs, e->cap * sizeof(*e->msgs));
        }
        for (size_t j = 0; j < n; j++) {
            e->msgs[e->n++] = rt_msg_ref(msgs[j]);
            e->bytes += msg_bytes(msgs[j]);
            c->bytes += msg_bytes(msgs[j]);
        }
        return;
    }
    rt_msg_t **out = rt_malloc((e->n + n) * sizeof(*out));
    size_t i = 0, j = 0, k = 0;
    while (i < e->n || j < n) {
        if (j == n || (i < e->n && e->msgs[i]->seq <= msgs[j]->seq)) {
            if (j < n && e->msgs[i]->seq == msgs[j]->seq)
                j++;
            out[k++] = e->msgs[i++];
        } else {
            out[k] = rt_msg_ref(msgs[j++]);
            e->bytes += msg_bytes(out[k]);
            c->bytes += msg_bytes(out[k]);
            k++;
        }
    }
    free(e->msgs);
    e->msgs = out, e->cap = e->n + n, e->n = k;
}

void rt_nats_cache_put(natsbus_t *nb, const char *epoch, rt_str_t topic, uint64_t from, uint64_t to, rt_msg_t *const *msgs,
                       size_t n)
{
    nb_cache_t *c = nb->cache;
    if (from > to || !rt_nats_cache_enabled(nb))
        return;
    pthread_mutex_lock(&c->lock);
    centry_t *e = find(c, epoch, topic);
    if (e && (to + 1 < e->lo || from > e->hi + 1)) { /* apart from what it has: keep the newer range */
        if (to < e->lo) {
            pthread_mutex_unlock(&c->lock);
            return;
        }
        drop_entry(c, e);
        e = NULL;
    }
    if (e == NULL)
        e = new_entry(c, epoch, topic, from, to);
    merge(c, e, msgs, n);
    if (from < e->lo)
        e->lo = from;
    if (to > e->hi)
        e->hi = to;
    cap_entry(c, e);
    touch(c, e);
    evict(c);
    pthread_mutex_unlock(&c->lock);
}

void rt_nats_cache_live(natsbus_t *nb, const char *epoch, rt_msg_t *msg, uint64_t prev)
{
    nb_cache_t *c = nb->cache;
    if (!rt_nats_cache_enabled(nb) || prev >= msg->seq)
        return;
    pthread_mutex_lock(&c->lock);
    centry_t *e = find(c, epoch, msg->topic);
    if (e && msg->seq <= e->hi) { /* known already */
        pthread_mutex_unlock(&c->lock);
        return;
    }
    if (e && prev > e->hi) /* a message of the topic came between, unseen here: start over from this one */
        drop_entry(c, e), e = NULL;
    if (e == NULL) /* nothing of the topic between its previous message and this one */
        e = new_entry(c, epoch, msg->topic, prev + 1, msg->seq);
    merge(c, e, &msg, 1);
    e->hi = msg->seq;
    cap_entry(c, e);
    touch(c, e);
    evict(c);
    pthread_mutex_unlock(&c->lock);
}

void rt_nats_cache_metrics(natsbus_t *nb, rt_buf_t *out)
{
    nb_cache_t *c = nb->cache;
    pthread_mutex_lock(&c->lock);
    uint64_t hits = c->hits, misses = c->misses, evictions = c->evictions;
    size_t bytes = c->bytes, topics = c->topics.count, limit = c->limit;
    pthread_mutex_unlock(&c->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_history_cache_hits_total History reads answered by this node's cache without reading messages "
                  "from JetStream.\n# TYPE rtbroker_history_cache_hits_total counter\nrtbroker_history_cache_hits_total %llu\n"
                  "# HELP rtbroker_history_cache_misses_total History reads of an exact topic that needed messages from JetStream.\n"
                  "# TYPE rtbroker_history_cache_misses_total counter\nrtbroker_history_cache_misses_total %llu\n"
                  "# HELP rtbroker_history_cache_evictions_total Topics dropped from the cache at history.cache_bytes.\n"
                  "# TYPE rtbroker_history_cache_evictions_total counter\nrtbroker_history_cache_evictions_total %llu\n"
                  "# HELP rtbroker_history_cache_bytes Bytes of messages in the cache.\n"
                  "# TYPE rtbroker_history_cache_bytes gauge\nrtbroker_history_cache_bytes %zu\n"
                  "# HELP rtbroker_history_cache_limit_bytes history.cache_bytes.\n"
                  "# TYPE rtbroker_history_cache_limit_bytes gauge\nrtbroker_history_cache_limit_bytes %zu\n"
                  "# HELP rtbroker_history_cache_topics Topics with history in the cache.\n"
                  "# TYPE rtbroker_history_cache_topics gauge\nrtbroker_history_cache_topics %zu\n",
                  (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)evictions, bytes, limit, topics);
}
