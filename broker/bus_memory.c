/*
 * The embedded memory bus: one global SEQ under one lock, the history (history.c),
 * Idempotency-Key de-duplication, and the handoff to every worker's inbox made under
 * the same lock so that each inbox sees messages in SEQ order. EPOCH is random per
 * process: a restart loses the history, and old ids get a gap notice.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "history.h"
#include "hub.h"
#include "map.h"

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
    rt_history_t *history;
    rt_map_t dedup;
    dedup_t *dedup_head, *dedup_tail;
    uint64_t dedup_ms;
    char epoch[16];
} membus_t;

void rt_random_token(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijkmnpqrstuvwxyz23456789";
    unsigned char rnd[32] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    if (n > sizeof(rnd))
        n = sizeof(rnd);
    if (fd < 0 || read(fd, rnd, n) != (ssize_t)n) {
        uint64_t t = rt_wall_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(rnd, &t, sizeof(t));
    }
    if (fd >= 0)
        close(fd);
    for (size_t i = 0; i < n; i++)
        out[i] = alphabet[rnd[i] % 32];
    out[n] = '\0';
}

static int mb_start(rt_bus_t *bus, char *err, size_t errlen)
{
    membus_t *mb = (membus_t *)bus;
    (void)err, (void)errlen;
    rt_random_token(mb->epoch, 8);
    rt_history_configure(mb->history, (size_t)rt_cfg_int("history.max_messages"), (uint64_t)rt_cfg_int("history.max_age"),
                         (size_t)rt_cfg_int("history.max_bytes"), (size_t)rt_cfg_int("history.max_topics"));
    mb->dedup_ms = (uint64_t)rt_cfg_int("publish.dedup_window");
    return 0;
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
    rt_history_add(mb->history, msg);
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

static int mb_publish_ephemeral(rt_bus_t *bus, rt_msg_t *msg)
{
    (void)bus;
    rt_hub_broadcast(msg);
    rt_msg_unref(msg);
    return RT_OK;
}

static int mb_replay(rt_bus_t *bus, rt_replay_t *r, rt_replay_cb cb, void *ctx)
{
    membus_t *mb = (membus_t *)bus;
    (void)cb, (void)ctx;
    rt_history_replay(mb->history, rt_cstr(mb->epoch), 0, r);
    return RT_OK;
}

static void mb_tick(rt_bus_t *bus)
{
    membus_t *mb = (membus_t *)bus;
    pthread_mutex_lock(&mb->lock);
    dedup_expire(mb, rt_wall_ms());
    pthread_mutex_unlock(&mb->lock);
    rt_history_tick(mb->history);
}

static void mb_interest(rt_bus_t *bus, rt_str_t pattern, int delta) { (void)bus, (void)pattern, (void)delta; }

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
    pthread_mutex_unlock(&mb->lock);
    rt_buf_printf(out,
                  "# HELP rtbroker_bus_up Whether the bus is connected (memory: always).\n# TYPE rtbroker_bus_up gauge\n"
                  "rtbroker_bus_up{bus=\"memory\"} 1\n"
                  "# HELP rtbroker_bus_seq The last SEQ assigned.\n# TYPE rtbroker_bus_seq gauge\nrtbroker_bus_seq %llu\n",
                  (unsigned long long)seq);
    rt_history_metrics(mb->history, out);
}

static void mb_stop(rt_bus_t *bus) { (void)bus; }

static size_t mb_forget(rt_bus_t *bus, rt_str_t topic) { return rt_history_forget(((membus_t *)bus)->history, topic); }

static const rt_bus_ops_t membus_ops = {"memory",  mb_start,    mb_stop,  mb_publish, mb_publish_ephemeral,
                                        mb_replay, mb_interest, mb_epoch, mb_ready,   mb_tick,
                                        mb_metrics, mb_forget};

rt_bus_t *rt_bus_memory_new(void)
{
    membus_t *mb = rt_calloc(1, sizeof(*mb));
    mb->super.ops = &membus_ops;
    mb->history = rt_history_new();
    pthread_mutex_init(&mb->lock, NULL);
    return &mb->super;
}
