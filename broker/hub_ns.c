/*
 * The namespaces' side of subscribing (services.subscribe): `recover: none` topics start now whatever resume point
 * was given; `recover: latest` exact topics subscribed without a resume point get their latest retained message
 * first, as a copy flagged RT_MSG_LATEST ("latest": true in envelopes), then the live ones.
 */
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "namespace.h"

static int recover_of(rt_str_t pattern)
{
    int wild = 0;
    rt_topic_check(pattern, 1, &wild);
    const rt_ns_t *ns = wild ? NULL : rt_ns_of(pattern);
    return ns ? ns->recover : RT_RECOVER_STREAM;
}

/* The newest retained message of an exact topic, as a flagged copy, or NULL. */
static rt_msg_t *latest_copy(rt_replay_t *r)
{
    rt_msg_t *copy = NULL;
    if (r->count) {
        rt_msg_t *m = r->msgs[r->count - 1];
        copy = rt_msg_new(m->topic, m->event, m->content_type, m->data);
        copy->flags = m->flags | RT_MSG_LATEST;
        copy->seq = m->seq;
        copy->time_ms = m->time_ms;
        memcpy(copy->idbuf, m->id.base, m->id.len);
        copy->id = rt_str(copy->idbuf, m->id.len);
    }
    rt_replay_release(r);
    return copy;
}

/* A latest-message lookup the bus answers later (NATS: from JetStream). */
typedef struct latest_req {
    rt_sub_t *sub;
    rt_replay_t r;
    int has_since;
    uint64_t since; /* a copy after it was sent by the resume's replay */
} latest_req_t;

static void send_latest(rt_sub_t *sub, rt_msg_t *m, int has_since, uint64_t since)
{
    if (m == NULL)
        return;
    if (!has_since || m->seq <= since) /* after the resume point: the replay sent it */
        sub->tp->deliver(sub, m);
    rt_msg_unref(m);
}

static void on_latest(void *ctx, rt_replay_t *r, int err)
{
    latest_req_t *q = ctx;
    rt_sub_t *sub = q->sub;
    (void)r;
    sub->replays_due--;
    rt_msg_t *m = NULL;
    if (err == RT_OK)
        m = latest_copy(&q->r);
    if (m != NULL && !sub->ending && !sub->closed) {
        sub->replaying = 1;
        send_latest(sub, m, q->has_since, q->since);
        sub->replaying = 0;
    } else if (m != NULL) {
        rt_msg_unref(m);
    }
    rt_sub_undefer(sub); /* what was written meanwhile goes after the copy */
    free(q);
    rt_sub_put(sub);
}

/* Sends the newest retained message of an exact topic as a flagged copy, now or once the bus answers; until then
 * what the connection is sent waits behind it. */
static void deliver_latest(rt_sub_t *sub, rt_str_t topic, int has_since, uint64_t since)
{
    latest_req_t *q = rt_calloc(1, sizeof(*q));
    q->sub = sub;
    q->has_since = has_since;
    q->since = since;
    q->r.patterns = &topic;
    q->r.npatterns = 1;
    q->r.has_before = 1;
    q->r.before = UINT64_MAX;
    q->r.max = 1;
    int err = rt_bus->ops->replay(rt_bus, &q->r, on_latest, q);
    if (err == RT_REPLAY_PENDING) {
        q->r.patterns = NULL, q->r.npatterns = 0; /* the bus copied them */
        sub->replays_due++;
        rt_sub_hold(sub);
        return;
    }
    if (err == RT_OK)
        send_latest(sub, latest_copy(&q->r), has_since, since);
    free(q);
}

void rt_ns_want_latest(rt_sub_t *sub) { sub->want_latest = 1; }

int rt_ns_subscribe(rt_sub_t *sub, const rt_sub_opts_t *o)
{
    int want_latest = sub->want_latest;
    sub->want_latest = 0;
    if (rt_ns_count() == 0)
        return rt_sub_subscribe(sub, o);
    size_t n = o->ntopics, nnone = 0;
    for (size_t i = 0; i < n; i++)
        nnone += recover_of(o->topics[i]) == RT_RECOVER_NONE;
    int err;
    if (o->since.len && nnone > 0) { /* two subscriptions: the `none` topics from now, the others from since */
        rt_str_t *none = rt_calloc(n, sizeof(*none)), *rest = rt_calloc(n, sizeof(*rest));
        size_t a = 0, b = 0;
        for (size_t i = 0; i < n; i++)
            if (recover_of(o->topics[i]) == RT_RECOVER_NONE)
                none[a++] = o->topics[i];
            else
                rest[b++] = o->topics[i];
        rt_sub_opts_t first = *o, second = *o;
        first.topics = none, first.ntopics = a, first.since = rt_str(NULL, 0);
        second.topics = rest, second.ntopics = b;
        err = b ? rt_sub_subscribe(sub, &second) : RT_OK;
        if (err == RT_OK)
            err = rt_sub_subscribe(sub, &first);
        free(none);
        free(rest);
        return err;
    }
    if ((err = rt_sub_subscribe(sub, o)) != RT_OK || (o->since.len && !want_latest))
        return err;
    rt_id_t since = {{NULL, 0}, 0};
    if (o->since.len && (rt_id_parse(o->since, &since) != RT_OK || !rt_str_eq(since.epoch, rt_bus->ops->epoch(rt_bus))))
        return RT_OK; /* another history: the replay has sent everything it holds */
    for (size_t i = 0; i < n && !rt_sub_winding_down(sub); i++) {
        if (recover_of(o->topics[i]) != RT_RECOVER_LATEST)
            continue;
        deliver_latest(sub, o->topics[i], o->since.len != 0, since.seq);
    }
    return RT_OK;
}
