/*
 * Rate limits: token buckets, one per (kind, key), in a map under one mutex; the
 * critical section is a lookup and a few arithmetic operations. Idle buckets are
 * dropped by a sweep so that many client IPs cannot grow the map without bound.
 */
#include <pthread.h>
#include <stdlib.h>

#include "map.h"
#include "ratelimit.h"

typedef struct entry {
    rt_bucket_t b;
    rt_str_t key;
    char keybuf[];
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rt_map_t buckets;

int rt_bucket_take(rt_bucket_t *b, double rate, uint64_t now_ms)
{
    if (rate <= 0)
        return 1;
    if (b->last_ms == 0) {
        b->tokens = rate;
    } else {
        /* another thread may have read the clock before us and taken the lock after: time never goes back here
         * (an unsigned now - last_ms that wrapped around filled the bucket: two workers let twice the rate pass) */
        b->tokens += (double)rt_ms_since(b->last_ms, now_ms) * rate / 1000.0;
        if (b->tokens > rate)
            b->tokens = rate;
    }
    if (now_ms > b->last_ms)
        b->last_ms = now_ms;
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

int rt_rate_allow(char kind, rt_str_t key, double rate)
{
    if (rate <= 0)
        return 1;
    char k[200];
    size_t n = key.len > sizeof(k) - 2 ? sizeof(k) - 2 : key.len;
    k[0] = kind, k[1] = ':';
    memcpy(k + 2, key.base, n);
    rt_str_t ks = rt_str(k, n + 2);
    pthread_mutex_lock(&lock);
    uint64_t now = rt_now_ms();
    entry_t *e = rt_map_get(&buckets, ks);
    if (e == NULL) {
        e = rt_calloc(1, sizeof(*e) + ks.len);
        memcpy(e->keybuf, k, ks.len);
        e->key = rt_str(e->keybuf, ks.len);
        rt_map_put(&buckets, e->key, e);
    }
    int ok = rt_bucket_take(&e->b, rate, now);
    pthread_mutex_unlock(&lock);
    return ok;
}

void rt_rate_sweep(void)
{
    pthread_mutex_lock(&lock);
    uint64_t now = rt_now_ms();
    size_t b = 0;
    rt_map_entry_t *e = rt_map_next(&buckets, NULL, &b);
    while (e != NULL) {
        rt_map_entry_t *next = rt_map_next(&buckets, e, &b);
        entry_t *x = e->value;
        if (rt_ms_since(x->b.last_ms, now) > 10000) {
            rt_map_del(&buckets, x->key);
            free(x);
        }
        e = next;
    }
    pthread_mutex_unlock(&lock);
}
