/*
 * Presence across the cluster: a JetStream key-value bucket `<stream>_presence` whose
 * max age is presence.ttl. Each node writes `m.<node>.<topic>` (its whole member list
 * of that topic, versioned) when it changes and `n.<node>` as a heartbeat, and rewrites
 * all of them every ttl/3 so that nothing of a live node ages out. Nodes read the
 * bucket at start and after each reconnect, and follow it live through a core NATS
 * subscription to the bucket's subjects. Entries that age out give watchers no event,
 * so a node whose heartbeat stops for ttl is declared gone here and its members leave.
 * Blocking calls run on this file's own thread; the live callback only parses and
 * hands over to presence.c.
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "presence.h"
#include "presence_nats.h"
#include "text.h"
#include "topic.h"

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    natsSubscription *sub;
    char bucket[160], prefix[200]; /* prefix: "$KV.<bucket>." */
    uint64_t ttl_ms, beat_ms;
    int dirty, stopping, started, put_failed;
    natsStatus put_status; /* why the last failed write failed */
} pn = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static void on_change(void)
{
    pthread_mutex_lock(&pn.lock);
    pn.dirty = 1;
    pthread_cond_signal(&pn.wake);
    pthread_mutex_unlock(&pn.lock);
}

/* {"v":N,"m":[[client,user|null,info|null],...]} from node for topic. */
static void apply(rt_str_t node, rt_str_t topic, rt_str_t value, uint64_t age_ms)
{
    rt_json_field_t f[4];
    int nf = rt_json_object(value, f, 4);
    uint64_t version = 0;
    rt_str_t list = {NULL, 0};
    for (int i = 0; i < nf; i++) {
        if (rt_str_eqc(f[i].key, "v") && f[i].type == 'n')
            version = strtoull(f[i].value.base, NULL, 10); /* the object was validated: a digit follows */
        else if (rt_str_eqc(f[i].key, "m") && f[i].type == 'a')
            list = f[i].value;
    }
    if (nf < 0 || list.len == 0 || version == 0) {
        rt_log(RT_LOG_WARN, "presence: ignoring a malformed entry of node %.*s", (int)node.len, node.base);
        return;
    }
    size_t max = list.len / 8 + 1;
    rt_str_t *items = rt_malloc(max * sizeof(*items));
    rt_presence_member_t *m = rt_malloc(max * sizeof(*m));
    char *text = rt_malloc(list.len + 1); /* decoded strings, packed */
    size_t used = 0, n = 0;
    int count = rt_json_array(list, items, max);
    for (int i = 0; i < count; i++) {
        rt_str_t parts[3];
        if (rt_json_array(items[i], parts, 3) != 3 || parts[0].base[0] != '"')
            continue;
        int cl = rt_json_unescape(parts[0], text + used, list.len + 1 - used);
        if (cl < 0 || !rt_presence_client_ok(rt_str(text + used, (size_t)cl)))
            continue;
        m[n].client = rt_str(text + used, (size_t)cl);
        used += (size_t)cl;
        m[n].user = rt_str(NULL, 0);
        if (parts[1].base[0] == '"') {
            int ul = rt_json_unescape(parts[1], text + used, list.len + 1 - used);
            if (ul < 0 || memchr(text + used, '\0', (size_t)ul))
                continue; /* "\u0000": member keys are C strings (presence.c) */
            m[n].user = rt_str(text + used, (size_t)ul);
            used += (size_t)ul;
        }
        m[n].info = parts[2].base[0] == '{' ? parts[2] : rt_str(NULL, 0);
        n++;
    }
    rt_presence_remote(node, topic, version, age_ms, m, n);
    free(text);
    free(m);
    free(items);
}

void rt_presence_nats_entry(const char *key, rt_str_t value, uint64_t age_ms)
{
    const char *self = rt_presence_node();
    if (strncmp(key, "n.", 2) == 0) {
        if (strcmp(key + 2, self) != 0)
            rt_presence_remote_seen(rt_cstr(key + 2), age_ms);
        return;
    }
    const char *dot = strncmp(key, "m.", 2) == 0 ? strchr(key + 2, '.') : NULL;
    if (dot == NULL || rt_topic_check(rt_cstr(dot + 1), 0, NULL) != RT_OK)
        return; /* not a topic a client could be present in (any NATS client may write the bucket) */
    rt_str_t node = rt_str(key + 2, (size_t)(dot - key - 2));
    if (rt_str_eqc(node, self) || age_ms > pn.ttl_ms)
        return;
    apply(node, rt_cstr(dot + 1), value, age_ms);
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    const char *subject = natsMsg_GetSubject(msg), *op = NULL;
    size_t plen = strlen(pn.prefix);
    /* deletes and purges (nobody makes them but an operator) carry no member list */
    if (strncmp(subject, pn.prefix, plen) == 0 && natsMsgHeader_Get(msg, "KV-Operation", &op) != NATS_OK)
        rt_presence_nats_entry(subject + plen, rt_str(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg)), 0);
    natsMsg_Destroy(msg);
}

static void put(void *ctx, rt_str_t topic, rt_str_t value)
{
    (void)ctx;
    char key[300];
    snprintf(key, sizeof(key), "m.%s.%.*s", rt_presence_node(), (int)topic.len, topic.base);
    natsStatus st = kvStore_Put(NULL, pn.kv, key, value.base, (int)value.len);
    if (st != NATS_OK)
        pn.put_failed = 1, pn.put_status = st;
}

static int bind_bucket(void)
{
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = pn.bucket;
    kc.History = 1;
    kc.TTL = (int64_t)pn.ttl_ms * 1000000; /* nanoseconds: it becomes the stream's max age */
    natsStatus s = js_CreateKeyValue(&pn.kv, pn.js, &kc);
    if (s != NATS_OK)
        s = js_KeyValue(&pn.kv, pn.js, pn.bucket); /* made by another node, maybe with another ttl: use it as it is */
    if (s != NATS_OK) {
        pn.kv = NULL;
        return -1;
    }
    return 0;
}

/* Everything the bucket holds now. */
static void load(void)
{
    kvKeysList keys = {0};
    if (kvStore_Keys(&keys, pn.kv, NULL) != NATS_OK)
        return;
    int64_t now_ns = (int64_t)rt_wall_ms() * 1000000;
    for (int i = 0; i < keys.Count; i++) {
        kvEntry *e = NULL;
        if (kvStore_Get(&e, pn.kv, keys.Keys[i]) != NATS_OK)
            continue;
        int64_t age = (now_ns - kvEntry_Created(e)) / 1000000;
        rt_presence_nats_entry(keys.Keys[i], rt_str(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e)), age > 0 ? (uint64_t)age : 0);
        kvEntry_Destroy(e);
    }
    kvKeysList_Destroy(&keys);
}

static void *presence_thread(void *arg)
{
    (void)arg;
    int was_connected = 0;
    uint64_t last_full = 0;
    pthread_mutex_lock(&pn.lock);
    while (!pn.stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000;
        if (ts.tv_nsec >= 1000000000)
            ts.tv_sec++, ts.tv_nsec -= 1000000000;
        if (!pn.dirty)
            pthread_cond_timedwait(&pn.wake, &pn.lock, &ts);
        int dirty = pn.dirty;
        pn.dirty = 0;
        pthread_mutex_unlock(&pn.lock);

        int connected = natsConnection_Status(pn.nc) == NATS_CONN_STATUS_CONNECTED;
        if (connected && pn.kv == NULL && bind_bucket() != 0) {
            rt_log(RT_LOG_WARN, "presence: cannot open the key-value bucket %s; retrying", pn.bucket);
            connected = 0;
            sleep(1);
        }
        uint64_t now = rt_now_ms();
        if (connected && pn.kv) {
            /* a failed write is retried with everything, at most once a second */
            int full = !was_connected || now - last_full >= pn.beat_ms || (pn.put_failed && now - last_full >= 1000);
            if (!was_connected)
                load(); /* at start and after each reconnect: what changed while we could not see */
            if (full) {
                pn.put_failed = 0;
                char key[64], beat[32];
                snprintf(key, sizeof(key), "n.%s", rt_presence_node());
                snprintf(beat, sizeof(beat), "{\"t\":%llu}", (unsigned long long)rt_wall_ms());
                natsStatus st = kvStore_PutString(NULL, pn.kv, key, beat);
                if (st != NATS_OK)
                    pn.put_failed = 1, pn.put_status = st;
                last_full = now;
            }
            if (full || dirty)
                rt_presence_collect(full, put, NULL);
            if (pn.put_failed && full)
                rt_log(RT_LOG_WARN, "presence: writing to the key-value bucket %s failed (%s; a member list over the "
                                    "server's max_payload is refused); retrying in 1 s",
                       pn.bucket, natsStatus_GetText(pn.put_status));
        }
        was_connected = connected && pn.kv;
        rt_presence_expire_nodes(pn.ttl_ms);
        pthread_mutex_lock(&pn.lock);
    }
    pthread_mutex_unlock(&pn.lock);
    return NULL;
}

void rt_presence_nats_start(natsConnection *nc, jsCtx *js, const char *stream)
{
    pn.nc = nc;
    pn.js = js;
    pn.ttl_ms = (uint64_t)rt_cfg_int("presence.ttl");
    pn.beat_ms = pn.ttl_ms / 3;
    size_t i = 0;
    for (; stream[i] && i + 10 < sizeof(pn.bucket); i++) {
        char c = stream[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        pn.bucket[i] = ok ? c : '_';
    }
    memcpy(pn.bucket + i, "_presence", 10);
    snprintf(pn.prefix, sizeof(pn.prefix), "$KV.%s.", pn.bucket);
    char subject[220];
    snprintf(subject, sizeof(subject), "%s>", pn.prefix);
    natsConnection_Subscribe(&pn.sub, nc, subject, on_msg, NULL); /* core NATS: survives reconnects */
    rt_presence_on_change(on_change);
    pn.started = 1;
    pthread_create(&pn.thread, NULL, presence_thread, NULL);
}

void rt_presence_nats_stop(void)
{
    if (!pn.started)
        return;
    rt_presence_on_change(NULL);
    pthread_mutex_lock(&pn.lock);
    pn.stopping = 1;
    pthread_cond_signal(&pn.wake);
    pthread_mutex_unlock(&pn.lock);
    pthread_join(pn.thread, NULL);
    pn.started = 0;
    if (pn.kv && natsConnection_Status(pn.nc) == NATS_CONN_STATUS_CONNECTED)
        rt_presence_collect(0, put, NULL); /* the leaves of the members this node just let go */
}

void rt_presence_nats_release(void)
{
    natsSubscription_Destroy(pn.sub);
    pn.sub = NULL;
    kvStore_Destroy(pn.kv);
    pn.kv = NULL;
}
