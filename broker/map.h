/* A string-keyed hash map (chained, power-of-two buckets, keyed SipHash-1-3). Not thread-safe: each owner locks or
 * confines it. */
#ifndef RT_MAP_H
#define RT_MAP_H

#include "rt.h"

typedef struct rt_map_entry {
    struct rt_map_entry *next;
    uint64_t hash;
    rt_str_t key; /* points into the owner's value (not copied) */
    void *value;
} rt_map_entry_t;

typedef struct rt_map {
    rt_map_entry_t **buckets;
    size_t nbuckets, count;
} rt_map_t;

/* FNV-1a: the same value on every node and every run, for names derived from shared state. Never for a map's
 * buckets: colliding keys are cheap to make (the maps use a keyed SipHash). */
uint64_t rt_hash_stable(rt_str_t key);
void *rt_map_get(const rt_map_t *m, rt_str_t key);
/* Insert; the key slice must stay valid while the entry exists. Replaces an existing value. */
void rt_map_put(rt_map_t *m, rt_str_t key, void *value);
void *rt_map_del(rt_map_t *m, rt_str_t key);
void rt_map_free(rt_map_t *m); /* frees the map's own memory, not the values */
/* Iterate: for (rt_map_entry_t *e = NULL; (e = rt_map_next(m, e, &i)) != NULL;) with size_t i = 0. */
rt_map_entry_t *rt_map_next(const rt_map_t *m, rt_map_entry_t *e, size_t *bucket);

#endif
