/*
 * String-keyed hash map used by every table whose keys a client may choose (topics,
 * presence, de-duplication, rate limits). Keys are hashed with SipHash-1-3 under a
 * random key drawn once per process, so that nobody can make keys share a bucket;
 * chained buckets doubled at load factor 1. The map never copies keys: the owner's
 * value holds the bytes, which keeps one allocation per topic.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

#include "map.h"
#include "siphash.h"

/* Drawn when the first map allocates its buckets, before any key is hashed: every map with buckets has seen it. */
static uint8_t map_key[16];
static pthread_once_t map_key_once = PTHREAD_ONCE_INIT;

static int read_urandom(uint8_t *out, size_t n)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    ssize_t got = fd >= 0 ? read(fd, out, n) : -1;
    if (fd >= 0)
        close(fd);
    return got == (ssize_t)n ? 0 : -1;
}

static void draw_map_key(void)
{
    ssize_t got;
    do
        got = getrandom(map_key, sizeof(map_key), 0);
    while (got < 0 && errno == EINTR);
    if (got != (ssize_t)sizeof(map_key) && read_urandom(map_key, sizeof(map_key)) != 0) {
        /* a guessable key would let clients flood one bucket: better not to start */
        fprintf(stderr, "rtbroker: no random bytes from the OS (getrandom, /dev/urandom): cannot key the hash maps\n");
        abort();
    }
}

static uint64_t map_hash(rt_str_t key) { return rt_siphash(map_key, key.base, key.len, 1, 3); }

uint64_t rt_hash_stable(rt_str_t key)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < key.len; i++) {
        h ^= (unsigned char)key.base[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* The slot holding key, or the empty one at its chain's end; the map has buckets. */
static rt_map_entry_t **find(const rt_map_t *m, rt_str_t key, uint64_t h)
{
    rt_map_entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->hash == h && rt_str_eq((*pp)->key, key))
            return pp;
    return pp;
}

void *rt_map_get(const rt_map_t *m, rt_str_t key)
{
    if (m->nbuckets == 0)
        return NULL;
    rt_map_entry_t **pp = find(m, key, map_hash(key));
    return *pp ? (*pp)->value : NULL;
}

static void grow(rt_map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    pthread_once(&map_key_once, draw_map_key);
    rt_map_entry_t **b = rt_calloc(n, sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        rt_map_entry_t *e = m->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void rt_map_put(rt_map_t *m, rt_str_t key, void *value)
{
    if (m->count >= m->nbuckets)
        grow(m);
    uint64_t h = map_hash(key);
    rt_map_entry_t **pp = find(m, key, h);
    if (*pp) {
        (*pp)->value = value;
        (*pp)->key = key;
        return;
    }
    rt_map_entry_t *e = rt_malloc(sizeof(*e));
    e->next = NULL, e->hash = h, e->key = key, e->value = value;
    *pp = e;
    m->count++;
}

void *rt_map_del(rt_map_t *m, rt_str_t key)
{
    if (m->nbuckets == 0)
        return NULL;
    rt_map_entry_t **pp = find(m, key, map_hash(key));
    if (*pp == NULL)
        return NULL;
    rt_map_entry_t *e = *pp;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

rt_map_entry_t *rt_map_next(const rt_map_t *m, rt_map_entry_t *e, size_t *bucket)
{
    if (e && e->next)
        return e->next;
    if (e)
        (*bucket)++;
    for (; *bucket < m->nbuckets; (*bucket)++)
        if (m->buckets[*bucket])
            return m->buckets[*bucket];
    return NULL;
}

void rt_map_free(rt_map_t *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        rt_map_entry_t *e = m->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}
