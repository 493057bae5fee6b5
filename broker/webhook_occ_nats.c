/*
 * Webhooks, topic.occupied/vacated across the cluster (bus: nats): each node writes a key "<node>.<hex topic>" in the
 * JetStream key-value bucket <prefix>_wh_occupancy while it has subscriptions to the topic (or pattern), deletes it
 * when it has none, and rewrites its keys every presence.ttl/3. Every node watches the bucket, so all see the same
 * changes in the same order: a topic whose first key appears is occupied (event id "occ-<revision>"), one whose
 * last key goes and stays gone for webhooks.vacated_delay is vacated ("vac-<revision>"). Every node emits the event
 * with that same id and the work queue's Nats-Msg-Id de-duplication keeps one. A dead node's keys age out of the
 * bucket after presence.ttl without a delete event: each node drops keys older than that itself, so a dead node
 * keeps a topic occupied for at most presence.ttl. Blocking calls run on this file's own thread.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "map.h"
#include "presence.h"
#include "webhook.h"

typedef struct lcount { /* this node's subscriptions to a topic */
    size_t n;
    char topic[];
} lcount_t;

typedef struct cnode { /* a node's key of a topic */
    uint64_t created; /* wall ms: when it was last written */
    char id[];
} cnode_t;

typedef struct ctopic { /* the cluster's view of one topic */
    char *topic;
    rt_map_t nodes;     /* node id -> cnode_t */
    int occupied;
    uint64_t vacate_at; /* monotonic ms */
    uint64_t last_rev, vac_rev;
} ctopic_t;

static struct {
    pthread_t thread;
    int started;
    atomic_int stopping;
    pthread_mutex_t lock;
    rt_map_t local; /* topic -> lcount_t; under lock */
    rt_map_t dirty; /* topics whose key must be written or deleted; under lock */
    rt_map_t cluster; /* topic -> ctopic_t; the thread's */
    kvStore *kv;
    kvWatcher *w;
    jsCtx *js;
    char bucket[160];
    uint64_t ttl_ms;
} on = {.lock = PTHREAD_MUTEX_INITIALIZER};

void rt_wh_occ_nats_local(rt_str_t topic, int delta)
{
    pthread_mutex_lock(&on.lock);
    lcount_t *l = rt_map_get(&on.local, topic);
    int changed = 0; /* 0 <-> 1: the key is written or deleted */
    if (l == NULL && delta > 0) {
        l = rt_malloc(sizeof(*l) + topic.len + 1);
        l->n = 1;
        memcpy(l->topic, topic.base, topic.len);
        l->topic[topic.len] = '\0';
        rt_map_put(&on.local, rt_str(l->topic, topic.len), l);
        changed = 1;
    } else if (l && delta > 0) {
        l->n++;
    } else if (l && --l->n == 0) {
        rt_map_del(&on.local, topic);
        free(l);
        changed = 1;
    }
    if (changed && rt_map_get(&on.dirty, topic) == NULL) {
        char *d = rt_strndup(topic);
        rt_map_put(&on.dirty, rt_cstr(d), d);
    }
    pthread_mutex_unlock(&on.lock);
}

static void key_of(char *out, size_t cap, const char *node, rt_str_t topic)
{
    size_t o = (size_t)snprintf(out, cap, "%s.", node);
    for (size_t i = 0; i < topic.len && o + 3 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%02x", (unsigned char)topic.base[i]);
}

static ctopic_t *ctopic(rt_str_t topic, int create)
{
    ctopic_t *t = rt_map_get(&on.cluster, topic);
    if (t == NULL && create) {
        t = rt_calloc(1, sizeof(*t));
        t->topic = rt_strndup(topic);
        rt_map_put(&on.cluster, rt_cstr(t->topic), t);
    }
    return t;
}

static void ctopic_free(ctopic_t *t)
{
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&t->nodes, e, &i)) != NULL;)
        free(e->value);
    rt_map_free(&t->nodes);
    free(t->topic);
    free(t);
}

static void node_gone(ctopic_t *t, rt_str_t node, uint64_t rev)
{
    cnode_t *n = rt_map_del(&t->nodes, node);
    if (n == NULL)
        return;
    free(n);
    if (t->nodes.count == 0) {
        t->vacate_at = rt_now_ms() + rt_wh_set.vacated_delay_ms;
        t->vac_rev = rev;
    }
}

static void apply(kvEntry *e, int live)
{
    const char *key = kvEntry_Key(e), *dot = strchr(key, '.');
    size_t hl = dot ? strlen(dot + 1) : 0;
    if (dot == NULL || hl == 0 || hl % 2 || hl / 2 > 255)
        return;
    char topic[256];
    for (size_t i = 0; i < hl / 2; i++) {
        unsigned v;
        if (sscanf(dot + 1 + 2 * i, "%2x", &v) != 1)
            return;
        topic[i] = (char)v;
    }
    rt_str_t t = rt_str(topic, hl / 2), node = rt_str(key, (size_t)(dot - key));
    uint64_t rev = kvEntry_Revision(e);
    ctopic_t *c = ctopic(t, kvEntry_Operation(e) == kvOp_Put);
    if (c == NULL)
        return;
    c->last_rev = rev;
    if (kvEntry_Operation(e) != kvOp_Put) {
        node_gone(c, node, rev);
        return;
    }
    uint64_t created = (uint64_t)(kvEntry_Created(e) / 1000000);
    cnode_t *n = rt_map_get(&c->nodes, node);
    if (n) {
        n->created = created;
        return;
    }
    n = rt_malloc(sizeof(*n) + node.len + 1);
    n->created = created;
    memcpy(n->id, node.base, node.len);
    n->id[node.len] = '\0';
    rt_map_put(&c->nodes, rt_str(n->id, node.len), n);
    if (c->nodes.count != 1)
        return;
    if (c->vacate_at) { /* back within vacated_delay (a reload): nothing happened */
        c->vacate_at = 0;
    } else if (!c->occupied) {
        c->occupied = 1;
        char id[40];
        snprintf(id, sizeof(id), "occ-%llu", (unsigned long long)rev);
        if (live) /* the bucket's state at start was announced when it happened */
            rt_wh_emit(RT_WH_OCCUPIED, t, id, rt_str(NULL, 0));
    }
}

/* Dead nodes' keys (older than presence.ttl: their node stopped rewriting them) and vacated topics. */
static void sweep(void)
{
    uint64_t wall = rt_wall_ms(), now = rt_now_ms();
    ctopic_t **done = NULL;
    size_t ndone = 0, i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&on.cluster, e, &i)) != NULL;) {
        ctopic_t *t = e->value;
        for (int again = 1; again;) { /* dropping frees map entries: walk again after each */
            again = 0;
            size_t j = 0;
            for (rt_map_entry_t *n = NULL; (n = rt_map_next(&t->nodes, n, &j)) != NULL;) {
                if (((cnode_t *)n->value)->created + on.ttl_ms < wall) {
                    rt_log(RT_LOG_INFO, "webhooks: node %.*s stopped counting for %s (its key aged out)", (int)n->key.len,
                           n->key.base, t->topic);
                    node_gone(t, n->key, t->last_rev);
                    again = 1;
                    break;
                }
            }
        }
        if (t->nodes.count == 0 && (t->vacate_at == 0 || t->vacate_at <= now)) {
            done = rt_realloc(done, (ndone + 1) * sizeof(*done));
            done[ndone++] = t;
        }
    }
    for (size_t k = 0; k < ndone; k++) {
        ctopic_t *t = done[k];
        if (t->occupied) {
            char id[40];
            snprintf(id, sizeof(id), "vac-%llu", (unsigned long long)t->vac_rev);
            rt_wh_emit(RT_WH_VACATED, rt_cstr(t->topic), id, rt_str(NULL, 0));
        }
        rt_map_del(&on.cluster, rt_cstr(t->topic));
        ctopic_free(t);
    }
    free(done);
}

/* Writes this node's keys: the changed ones, or all of them (the heartbeat). */
static void write_keys(int all)
{
    pthread_mutex_lock(&on.lock);
    rt_map_t dirty = on.dirty;
    memset(&on.dirty, 0, sizeof(on.dirty));
    size_t n = 0, i = 0, cap = (all ? on.local.count : 0) + dirty.count;
    char **topics = rt_calloc(cap ? cap : 1, sizeof(char *));
    int *put = rt_calloc(cap ? cap : 1, sizeof(int));
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&dirty, e, &i)) != NULL;) {
        put[n] = rt_map_get(&on.local, e->key) != NULL;
        topics[n++] = e->value;
    }
    i = 0;
    for (rt_map_entry_t *e = NULL; all && (e = rt_map_next(&on.local, e, &i)) != NULL;)
        if (rt_map_get(&dirty, e->key) == NULL) {
            put[n] = 1;
            topics[n++] = rt_strndup(e->key);
        }
    pthread_mutex_unlock(&on.lock);
    rt_map_free(&dirty);
    for (size_t k = 0; k < n; k++) {
        char key[600];
        key_of(key, sizeof(key), rt_presence_node(), rt_cstr(topics[k]));
        if (on.kv)
            put[k] ? kvStore_PutString(NULL, on.kv, key, "1") : kvStore_Delete(on.kv, key);
        free(topics[k]);
    }
    free(topics);
    free(put);
}

static void *occ_main(void *arg)
{
    (void)arg;
    uint64_t next_beat = 0, next_sweep = 0;
    int live = 0;
    while (!atomic_load(&on.stopping)) {
        if (on.w == NULL) {
            kvConfig kc;
            kvConfig_Init(&kc);
            kc.Bucket = on.bucket;
            kc.History = 1;
            kc.TTL = (int64_t)on.ttl_ms * 1000000; /* nanoseconds */
            kc.Replicas = (int)rt_cfg_int("nats.replicas");
            if ((on.kv == NULL && js_CreateKeyValue(&on.kv, on.js, &kc) != NATS_OK) ||
                kvStore_WatchAll(&on.w, on.kv, NULL) != NATS_OK) {
                usleep(500 * 1000);
                continue;
            }
            next_beat = 0; /* rewrite everything of ours */
        }
        kvEntry *e = NULL;
        natsStatus s = kvWatcher_Next(&e, on.w, 100);
        if (s == NATS_OK && e == NULL)
            live = 1; /* the initial values are in */
        else if (s == NATS_OK) {
            apply(e, live);
            kvEntry_Destroy(e);
        } else if (s != NATS_TIMEOUT) {
            usleep(200 * 1000);
        }
        uint64_t now = rt_now_ms();
        write_keys(now >= next_beat);
        if (now >= next_beat)
            next_beat = now + on.ttl_ms / 3;
        if (now >= next_sweep) {
            sweep();
            next_sweep = now + 100;
        }
    }
    write_keys(0); /* the deletes of the last subscriptions this node ended */
    return NULL;
}

void rt_wh_occ_nats_start(jsCtx *js, const char *prefix)
{
    on.js = js;
    on.ttl_ms = (uint64_t)rt_cfg_int("presence.ttl");
    snprintf(on.bucket, sizeof(on.bucket), "%s_wh_occupancy", prefix);
    for (char *c = on.bucket; *c; c++)
        *c = *c == '.' ? '_' : *c;
    on.started = pthread_create(&on.thread, NULL, occ_main, NULL) == 0;
}

void rt_wh_occ_nats_stop(void)
{
    atomic_store(&on.stopping, 1);
    if (on.started)
        pthread_join(on.thread, NULL);
    on.started = 0;
    if (on.w)
        kvWatcher_Destroy(on.w);
    if (on.kv)
        kvStore_Destroy(on.kv);
    on.w = NULL, on.kv = NULL;
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&on.cluster, e, &i)) != NULL;)
        ctopic_free(e->value);
    rt_map_free(&on.cluster);
    i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&on.local, e, &i)) != NULL;)
        free(e->value);
    rt_map_free(&on.local);
    i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&on.dirty, e, &i)) != NULL;)
        free(e->value);
    rt_map_free(&on.dirty);
}
