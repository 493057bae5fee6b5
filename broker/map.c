/*
 * String-keyed hash map used by the topic index and the memory bus. FNV-1a hashing,
 * chained buckets doubled at load factor 1. The map never copies keys: the owner's
 * value holds the bytes, which keeps one allocation per topic.
 */
#include <stdlib.h>

#include "map.h"

uint64_t rt_hash(rt_str_t key)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < key.len; i++) {
        h ^= (unsigned char)key.base[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static rt_map_entry_t **find(const rt_map_t *m, rt_str_t key, uint64_t h)
{
    if (m->nbuckets == 0)
        return NULL;
    rt_map_entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->hash == h && rt_str_eq((*pp)->key, key))
            return pp;
    return pp;
}

void *rt_map_get(const rt_map_t *m, rt_str_t key)
{
    rt_map_entry_t **pp = find(m, key, rt_hash(key));
    return pp && *pp ? (*pp)->value : NULL;
}

static void grow(rt_map_t *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
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
    uint64_t h = rt_hash(key);
    if (m->count >= m->nbuckets)
        grow(m);
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
    rt_map_entry_t **pp = find(m, key, rt_hash(key));
    if (pp == NULL || *pp == NULL)
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
