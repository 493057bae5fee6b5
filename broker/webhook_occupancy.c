/*
 * Webhooks, topic.occupied and topic.vacated: the number of subscriptions to each topic or pattern (a wildcard
 * subscription counts for its pattern, which is the "topic" of its own events). The first subscription makes the
 * topic occupied at once; the last one leaving makes it vacated only after webhooks.vacated_delay without a new
 * one, so a page reload fires nothing. On one node the count is this node's; with bus: nats it is the cluster's
 * (webhook_nats.c keeps every node's count in a JetStream key-value bucket and calls rt_wh_occ_cluster).
 */
#include <pthread.h>
#include <stdlib.h>

#include "map.h"
#include "webhook.h"

typedef struct occ {
    char *topic;
    size_t local;       /* this node's subscriptions */
    int occupied;       /* topic.occupied was sent (and vacated not yet) */
    uint64_t vacate_at; /* the count reached 0: vacated is due then, unless a subscription comes back */
} occ_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rt_map_t topics;
static size_t pending; /* topics waiting for their vacated: the tick walks the map only then */

static int cluster; /* bus: nats: the counts go to webhook_occ_nats.c */

static int tracked(void) { return rt_webhook_wants(RT_WH_OCCUPIED) || rt_webhook_wants(RT_WH_VACATED); }

void rt_wh_occ_set_cluster(void) { cluster = 1; }

static void drop(occ_t *o)
{
    rt_map_del(&topics, rt_cstr(o->topic));
    free(o->topic);
    free(o);
}

void rt_webhook_sub_added(rt_str_t pattern)
{
    if (!tracked())
        return;
    if (cluster) {
        rt_wh_occ_nats_local(pattern, 1);
        return;
    }
    pthread_mutex_lock(&lock);
    occ_t *o = rt_map_get(&topics, pattern);
    if (o == NULL) {
        o = rt_calloc(1, sizeof(*o));
        o->topic = rt_strndup(pattern);
        rt_map_put(&topics, rt_cstr(o->topic), o);
    }
    if (o->local++ == 0) {
        pending -= o->vacate_at != 0;
        o->vacate_at = 0; /* back within the delay: nothing happened */
        if (!o->occupied) {
            o->occupied = 1;
            rt_wh_emit(RT_WH_OCCUPIED, pattern, NULL, rt_str(NULL, 0));
        }
    }
    pthread_mutex_unlock(&lock);
}

void rt_webhook_sub_removed(rt_str_t pattern)
{
    if (!tracked())
        return;
    if (cluster) {
        rt_wh_occ_nats_local(pattern, -1);
        return;
    }
    pthread_mutex_lock(&lock);
    occ_t *o = rt_map_get(&topics, pattern);
    if (o && o->local > 0 && --o->local == 0) {
        o->vacate_at = rt_now_ms() + rt_wh_set.vacated_delay_ms;
        pending++;
    }
    pthread_mutex_unlock(&lock);
}

void rt_wh_occ_tick(void)
{
    if (!tracked() || cluster)
        return;
    uint64_t now = rt_now_ms();
    pthread_mutex_lock(&lock);
    if (pending == 0) {
        pthread_mutex_unlock(&lock);
        return;
    }
    occ_t **due = NULL;
    size_t n = 0, i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&topics, e, &i)) != NULL;) {
        occ_t *o = e->value;
        if (o->local == 0 && o->vacate_at && o->vacate_at <= now) {
            due = rt_realloc(due, (n + 1) * sizeof(*due));
            due[n++] = o;
        }
    }
    for (size_t k = 0; k < n; k++) { /* after the walk: dropping frees map entries */
        if (due[k]->occupied)
            rt_wh_emit(RT_WH_VACATED, rt_cstr(due[k]->topic), NULL, rt_str(NULL, 0));
        drop(due[k]);
        pending--;
    }
    free(due);
    pthread_mutex_unlock(&lock);
}

void rt_wh_occ_free(void)
{
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&topics, e, &i)) != NULL;) {
        occ_t *o = e->value;
        free(o->topic);
        free(o);
    }
    rt_map_free(&topics);
}
