/* The per-worker subscription index: exact topics by hash, patterns by a segment trie. */
#ifndef RT_INDEX_H
#define RT_INDEX_H

#include "map.h"
#include "topic.h"

typedef struct rt_ilist {
    struct rt_ilist *prev, *next;
} rt_ilist_t;

typedef struct rt_index_node rt_index_node_t;

/* One (subscriber, pattern) pair in the index. */
typedef struct rt_subscription {
    rt_ilist_t link;       /* in its node's list */
    rt_index_node_t *node; /* where it is linked */
    void *owner;           /* the subscriber */
    uint64_t last_seq;     /* highest SEQ this subscription delivered or skipped */
    uint64_t from_seq;     /* it delivers (by replay, live, or through an earlier subscription) every matching
                            * message after this SEQ; UINT64_MAX: no such promise */
    int presence;          /* a member of this (exact) topic's presence: gets its join and leave messages */
    rt_str_t pattern;      /* points into pattern_buf */
    char pattern_buf[];    /* sized to the pattern: one per subscriber and topic, most of them short */
} rt_subscription_t;

typedef struct rt_index {
    rt_map_t exact;        /* topic -> rt_index_node_t */
    rt_index_node_t *root; /* trie of patterns */
    size_t count;
} rt_index_t;

void rt_index_init(rt_index_t *ix);
void rt_index_dispose(rt_index_t *ix); /* must be empty */
/* Adds a subscription for a valid topic or pattern. */
rt_subscription_t *rt_index_add(rt_index_t *ix, rt_str_t pattern, void *owner);
void rt_index_remove(rt_index_t *ix, rt_subscription_t *s);
/* Calls cb for every subscription whose pattern matches the exact topic. cb must not
 * add or remove subscriptions. An owner with overlapping patterns is called once per pattern. */
void rt_index_match(rt_index_t *ix, rt_str_t topic, void (*cb)(rt_subscription_t *s, void *ctx), void *ctx);
/* How many subscriptions name exactly this topic (patterns not counted). */
size_t rt_index_exact_count(const rt_index_t *ix, rt_str_t topic);

#endif
