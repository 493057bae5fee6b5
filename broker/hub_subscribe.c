/*
 * Subscribing: the new patterns join the worker's index at once but stay held back until the
 * bus tells the replay's head (NATS: a fetch from JetStream, answered later on this worker);
 * then the replay goes out, without what another subscription of the connection delivers,
 * and what the transport wrote meanwhile follows it.
 */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "hub.h"
#include "ops.h"
#include "proxy.h"
#include "webhook.h"

/* A subscribe whose replay the bus completes later (NATS: fetched from JetStream). */
typedef struct pending_sub {
    rt_sub_t *sub;
    rt_replay_t r;
    rt_str_t *topics; /* the patterns asked for (copied while pending): [0, nfresh) new, the rest already there */
    size_t ntopics, nfresh;
    int first;        /* the connection had no subscription before: the replay sets its cursor */
    char since[RT_ID_MAX + 1];
    size_t since_len;
} pending_sub_t;

static int is_fresh(const pending_sub_t *p, rt_str_t pattern)
{
    for (size_t k = 0; k < p->nfresh; k++)
        if (rt_str_eq(pattern, p->topics[k]))
            return 1;
    return 0;
}

/* Whether a subscription of this connection other than the new patterns delivered this message or will deliver it
 * live: it matches, and it started before the message. One that started after it never sent it, whatever it
 * matches (one whose own replay is still due has from_seq UINT64_MAX). */
static int covered_by_others(rt_sub_t *sub, const pending_sub_t *p, const rt_msg_t *m)
{
    for (size_t i = 0; i < sub->nsubs; i++) {
        if (sub->subs[i]->from_seq < m->seq && rt_topic_match(sub->subs[i]->pattern, m->topic) &&
            !is_fresh(p, sub->subs[i]->pattern))
            return 1;
    }
    return 0;
}

/* The second half of a subscribe: the new patterns go live after the replay's head, then the replay goes out. */
static void subscribe_finish(rt_sub_t *sub, pending_sub_t *p, rt_str_t since)
{
    rt_replay_t *r = &p->r;
    /* a truncated replay left out messages before head: what it covers is not one range, so claim nothing */
    uint64_t from = r->truncated ? UINT64_MAX : r->after;
    if (r->has_since)
        rt_metrics_replay(r->gap);
    if (r->gap)
        sub->tp->gap(sub, since);
    uint64_t last = 0;
    for (size_t i = 0; i < r->count && !rt_sub_winding_down(sub); i++) { /* a slow end stops the replay */
        rt_msg_t *m = r->msgs[i];
        if (covered_by_others(sub, p, m))
            continue; /* an earlier subscription of this connection delivers it */
        last = m->seq;
        sub->tp->deliver(sub, m);
    }
    for (size_t i = 0; i < sub->nsubs; i++) {
        rt_subscription_t *s = sub->subs[i];
        if (is_fresh(p, s->pattern)) {
            s->last_seq = r->head;
            s->from_seq = from;
            continue;
        }
        for (size_t k = p->nfresh; k < p->ntopics; k++) /* subscribed again from an earlier point: the replay filled the range */
            if (from < s->from_seq && rt_str_eq(s->pattern, p->topics[k]))
                s->from_seq = from;
    }
    if (p->first) {
        sub->last_seq = r->truncated ? last : r->head;
        sub->cursor_held = 0;
    }
    rt_replay_release(r);
}

static void pending_free(pending_sub_t *p, int copied)
{
    for (size_t i = 0; copied && i < p->ntopics; i++)
        free((char *)p->topics[i].base);
    free(p->topics);
    free(p);
}

static void on_replayed(void *ctx, rt_replay_t *r, int err)
{
    pending_sub_t *p = ctx;
    rt_sub_t *sub = p->sub;
    (void)r;
    sub->replays_due -= p->r.has_since;
    if (err != RT_OK || sub->ending || sub->closed) {
        rt_replay_release(&p->r);
        if (p->first)
            sub->cursor_held = 0;
        if (err != RT_OK && !sub->ending && !sub->closed)
            rt_sub_schedule_end(sub, RT_END_SHUTDOWN); /* the bus went away before the replay came: the client resumes */
    } else {
        sub->replaying = 1;
        subscribe_finish(sub, p, rt_str(p->since, p->since_len));
        sub->replaying = 0;
    }
    rt_sub_undefer(sub);
    pending_free(p, 1);
    rt_sub_put(sub);
}

int rt_sub_subscribe(rt_sub_t *sub, const rt_sub_opts_t *o)
{
    if (sub->ending || sub->closed || sub->stopped)
        return RT_ECLOSED;
    if (o->ntopics == 0)
        return RT_ETOPIC;
    if (o->ntopics > rt_lim.max_topics || sub->nsubs + o->ntopics > rt_lim.max_topics)
        return RT_ETOOMANY;
    for (size_t i = 0; i < o->ntopics; i++) {
        if (rt_topic_check(o->topics[i], 1, NULL) != RT_OK)
            return RT_ETOPIC;
        int err = sub->granting ? RT_OK /* the server API */ : sub->auth_err ? sub->auth_err : rt_auth_allows(sub->ident, o->topics[i], 0);
        if (err != RT_OK)
            return err;
        if (!rt_proxy_subscribe_approved()) /* proxy.subscribe: only what the backend allowed (subscribe_ask) */
            return RT_EFORBIDDEN;
    }
    pending_sub_t *p = rt_calloc(1, sizeof(*p));
    rt_replay_t *r = &p->r;
    r->patterns = o->topics;
    r->npatterns = o->ntopics;
    r->max = o->max_replay;
    if (o->since.len) { /* parsed from a copy: a bus that answers later reads the id after the request is gone */
        if (o->since.len >= sizeof(p->since) || rt_id_parse(o->since, &r->since) != RT_OK) {
            free(p);
            return RT_EID;
        }
        memcpy(p->since, o->since.base, o->since.len);
        p->since_len = o->since.len;
        rt_id_parse(rt_str(p->since, p->since_len), &r->since);
        r->has_since = 1;
    }
    /* the new patterns join the index at once, held back (no stored message passes SEQ UINT64_MAX; ephemeral ones
     * do) until the replay's head is known; the bus's interest is taken first, so that the head is exact */
    p->first = sub->nsubs == 0;
    p->topics = rt_malloc(o->ntopics * sizeof(*p->topics));
    sub->subs = rt_realloc(sub->subs, (sub->nsubs + o->ntopics) * sizeof(*sub->subs));
    for (size_t i = 0; i < o->ntopics; i++) {
        int dup = 0;
        for (size_t k = 0; k < sub->nsubs; k++)
            dup |= rt_str_eq(sub->subs[k]->pattern, o->topics[i]);
        if (dup)
            continue;
        p->topics[p->nfresh++] = o->topics[i];
        rt_bus->ops->interest(rt_bus, o->topics[i], 1);
        rt_webhook_sub_added(o->topics[i]);
        rt_subscription_t *s = rt_index_add(&sub->w->index, o->topics[i], sub);
        s->last_seq = UINT64_MAX;
        s->from_seq = UINT64_MAX; /* covers nothing before its replay is known */
        sub->subs[sub->nsubs++] = s;
    }
    p->ntopics = p->nfresh;
    for (size_t i = 0; i < o->ntopics; i++) /* the patterns already there: the replay may start them earlier */
        if (!is_fresh(p, o->topics[i]))
            p->topics[p->ntopics++] = o->topics[i];
    int err = rt_bus->ops->replay(rt_bus, r, on_replayed, p);
    if (err == RT_REPLAY_PENDING) { /* the request's slices die with it: keep copies until the answer */
        for (size_t i = 0; i < p->ntopics; i++) {
            char *c = rt_malloc(p->topics[i].len + 1);
            memcpy(c, p->topics[i].base, p->topics[i].len);
            p->topics[i] = rt_str(c, p->topics[i].len);
        }
        r->patterns = NULL, r->npatterns = 0; /* the bus copied them */
        p->sub = sub;
        if (p->first) { /* the cursor stays where the client is until the replay's head is known */
            if (r->has_since)
                memcpy(sub->cursor, p->since, p->since_len), sub->cursor[p->since_len] = '\0';
            else
                rt_id_format(sub->cursor, rt_bus->ops->epoch(rt_bus), r->pending_head);
            sub->cursor_held = 1;
        }
        sub->replays_due += r->has_since; /* from now: nothing to replay, nothing to hold back */
        rt_sub_hold(sub);
        return RT_OK;
    }
    if (err == RT_OK)
        subscribe_finish(sub, p, o->since);
    else
        for (size_t i = 0; i < p->nfresh; i++)
            rt_sub_unsubscribe(sub, p->topics[i]);
    pending_free(p, 0);
    return err;
}

