/*
 * Per-worker subscription index: exact topics in a hash map, patterns in a trie keyed by
 * segment with '*' and '>' edges. A publish walks at most (segments x matching branches)
 * nodes instead of scanning subscribers. Touched only by its worker thread.
 */
#include <stdlib.h>

#include "index.h"

struct rt_index_node {
    rt_index_node_t *parent;
    rt_map_t children;     /* literal segment -> node */
    rt_index_node_t *star; /* '*' edge */
    rt_ilist_t here;       /* patterns ending at this node (and exact topics) */
    rt_ilist_t gt;         /* patterns ending with '>' after this node */
    int is_exact;          /* a node of the exact map, not of the trie */
    size_t nexact;         /* exact: the subscriptions in here */
    rt_str_t key;          /* segment (trie) or topic (exact); points into keybuf */
    char keybuf[];
};

static void ilist_init(rt_ilist_t *l) { l->prev = l->next = l; }
static int ilist_empty(const rt_ilist_t *l) { return l->next == l; }
static void ilist_insert(rt_ilist_t *head, rt_ilist_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static void ilist_unlink(rt_ilist_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static rt_index_node_t *node_new(rt_index_node_t *parent, rt_str_t key, int is_exact)
{
    rt_index_node_t *n = rt_calloc(1, sizeof(*n) + key.len + 1);
    n->parent = parent;
    n->is_exact = is_exact;
    ilist_init(&n->here);
    ilist_init(&n->gt);
    memcpy(n->keybuf, key.base, key.len);
    n->key = rt_str(n->keybuf, key.len);
    return n;
}

void rt_index_init(rt_index_t *ix)
{
    memset(ix, 0, sizeof(*ix));
    ix->root = node_new(NULL, rt_str("", 0), 0);
}

void rt_index_dispose(rt_index_t *ix)
{
    rt_map_free(&ix->exact);
    rt_map_free(&ix->root->children);
    free(ix->root);
    ix->root = NULL;
}

rt_subscription_t *rt_index_add(rt_index_t *ix, rt_str_t pattern, void *owner)
{
    rt_subscription_t *s = rt_calloc(1, sizeof(*s) + pattern.len + 1);
    memcpy(s->pattern_buf, pattern.base, pattern.len);
    s->pattern = rt_str(s->pattern_buf, pattern.len);
    s->owner = owner;
    int wild = 0;
    rt_topic_check(pattern, 1, &wild);
    rt_ilist_t *list;
    if (!wild) {
        rt_index_node_t *n = rt_map_get(&ix->exact, s->pattern);
        if (n == NULL) {
            n = node_new(NULL, s->pattern, 1);
            rt_map_put(&ix->exact, n->key, n);
        }
        s->node = n;
        list = &n->here;
        n->nexact++;
    } else {
        rt_index_node_t *n = ix->root;
        size_t i = 0;
        list = NULL;
        while (list == NULL) {
            size_t start = i;
            while (i < pattern.len && pattern.base[i] != '.')
                i++;
            rt_str_t seg = rt_str(pattern.base + start, i - start);
            int last = i >= pattern.len;
            i++;
            if (seg.len == 1 && seg.base[0] == '>') {
                list = &n->gt;
                break;
            }
            rt_index_node_t *child;
            if (seg.len == 1 && seg.base[0] == '*') {
                if (n->star == NULL)
                    n->star = node_new(n, seg, 0);
                child = n->star;
            } else if ((child = rt_map_get(&n->children, seg)) == NULL) {
                child = node_new(n, seg, 0);
                rt_map_put(&n->children, child->key, child);
            }
            n = child;
            if (last)
                list = &n->here;
        }
        s->node = n;
    }
    ilist_insert(list, &s->link);
    ix->count++;
    return s;
}

static int node_unused(const rt_index_node_t *n)
{
    return ilist_empty(&n->here) && ilist_empty(&n->gt) && n->children.count == 0 && n->star == NULL;
}

void rt_index_remove(rt_index_t *ix, rt_subscription_t *s)
{
    rt_index_node_t *n = s->node;
    ilist_unlink(&s->link);
    ix->count--;
    free(s);
    if (n->is_exact) {
        n->nexact--;
        if (node_unused(n)) {
            rt_map_del(&ix->exact, n->key);
            free(n);
        }
        return;
    }
    while (n != ix->root && node_unused(n)) {
        rt_index_node_t *p = n->parent;
        if (p->star == n)
            p->star = NULL;
        else
            rt_map_del(&p->children, n->key);
        rt_map_free(&n->children);
        free(n);
        n = p;
    }
}

static void call_list(rt_ilist_t *head, void (*cb)(rt_subscription_t *, void *), void *ctx)
{
    for (rt_ilist_t *l = head->next; l != head; l = l->next)
        cb(rt_container_of(l, rt_subscription_t, link), ctx);
}

static void walk(rt_index_node_t *n, rt_str_t topic, size_t pos, void (*cb)(rt_subscription_t *, void *), void *ctx)
{
    if (pos > topic.len) {
        call_list(&n->here, cb, ctx);
        return;
    }
    call_list(&n->gt, cb, ctx); /* '>' needs at least one more segment: there is one */
    size_t i = pos;
    while (i < topic.len && topic.base[i] != '.')
        i++;
    rt_str_t seg = rt_str(topic.base + pos, i - pos);
    rt_index_node_t *child = n->children.count ? rt_map_get(&n->children, seg) : NULL;
    if (child)
        walk(child, topic, i + 1, cb, ctx);
    if (n->star)
        walk(n->star, topic, i + 1, cb, ctx);
}

void rt_index_match(rt_index_t *ix, rt_str_t topic, void (*cb)(rt_subscription_t *s, void *ctx), void *ctx)
{
    rt_index_node_t *n = ix->exact.count ? rt_map_get(&ix->exact, topic) : NULL;
    if (n)
        call_list(&n->here, cb, ctx);
    if (ix->root->star || ix->root->children.count || !ilist_empty(&ix->root->gt))
        walk(ix->root, topic, 0, cb, ctx);
}

size_t rt_index_exact_count(const rt_index_t *ix, rt_str_t topic)
{
    const rt_index_node_t *n = ix->exact.count ? rt_map_get(&ix->exact, topic) : NULL;
    return n ? n->nexact : 0;
}
