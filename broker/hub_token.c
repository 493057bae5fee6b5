/*
 * Live connections' tokens: a new one on a connection (authenticate), and what happens as one
 * expires: a notice a minute before exp (for transports that take one), then the end at exp.
 * Each worker keeps its expiring subscribers in a wheel of
 * one-second slots (by the second their next step is due, modulo the wheel), so that the
 * 250 ms tick walks only the slots of the seconds that passed, not every subscriber: a
 * subscriber whose step is further away than the wheel sits in its slot until it comes round.
 */
#include "auth.h"
#include "hub.h"
#include "ops.h"
#include "proxy.h"
#include "userlimit.h"

#define SLOTS 1024 /* seconds */
#define NOTICE_MS 60000

int rt_sub_expires(const rt_sub_t *sub) { return sub->ident != NULL && sub->ident->exp_ms != 0; }

/* A connect-proxy identity that proxy.refresh extends: no notice, the backend is asked at exp instead. */
static int refreshed(const rt_sub_t *sub) { return sub->ident->proxied && rt_proxy_enabled(RT_PROXY_REFRESH); }

static int64_t due_ms(const rt_sub_t *sub)
{
    int notice = !sub->expiry_noticed && sub->tp->expiring != NULL && !refreshed(sub);
    return sub->ident->exp_ms - (notice ? NOTICE_MS : 0);
}

void rt_sub_expiry_add(rt_sub_t *sub)
{
    rt_worker_t *w = sub->w;
    if (!rt_sub_expires(sub) || sub->closed)
        return;
    if (w->expiry_slots == NULL) {
        w->expiry_slots = rt_malloc(SLOTS * sizeof(*w->expiry_slots));
        for (size_t i = 0; i < SLOTS; i++)
            h2o_linklist_init_anchor(&w->expiry_slots[i]);
        w->expiry_sec = (int64_t)rt_wall_ms() / 1000;
    }
    int64_t sec = due_ms(sub) / 1000;
    if (sec < w->expiry_sec)
        sec = w->expiry_sec; /* due already: the next walk takes it */
    h2o_linklist_insert(&w->expiry_slots[sec % SLOTS], &sub->expiry_link);
}

void rt_sub_expiry_remove(rt_sub_t *sub)
{
    if (h2o_linklist_is_linked(&sub->expiry_link))
        h2o_linklist_unlink(&sub->expiry_link);
}

/* The slots of every second from the last walk to now (the current one again: it is not over). */
void rt_hub_expiry_run(rt_worker_t *w, int64_t now)
{
    if (w->expiry_slots == NULL)
        return;
    h2o_linklist_t due;
    h2o_linklist_init_anchor(&due);
    int64_t last = now / 1000, first = w->expiry_sec;
    if (last - first >= SLOTS)
        first = last - SLOTS + 1;
    for (int64_t sec = first; sec <= last; sec++) {
        h2o_linklist_t *slot = &w->expiry_slots[sec % SLOTS];
        for (h2o_linklist_t *l = slot->next, *next; l != slot; l = next) {
            next = l->next;
            if (due_ms(H2O_STRUCT_FROM_MEMBER(rt_sub_t, expiry_link, l)) <= now) {
                h2o_linklist_unlink(l);
                h2o_linklist_insert(&due, l);
            }
        }
    }
    w->expiry_sec = last;
    /* one at a time from the list's head: what a transport does may end other subscribers, which unlinks them */
    while (!h2o_linklist_is_empty(&due)) {
        rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, expiry_link, due.next);
        h2o_linklist_unlink(&sub->expiry_link);
        if (sub->ending || sub->closed)
            continue;
        int64_t left = sub->ident->exp_ms - now;
        if (left <= 0) {
            if (!refreshed(sub)) /* else back on the wheel with the backend's answer (or at once when refused) */
                rt_sub_schedule_end(sub, RT_END_EXPIRED);
            else
                rt_proxy_refresh(sub);
            continue;
        }
        sub->expiry_noticed = 1;
        sub->tp->expiring(sub, (left + 999) / 1000);
        rt_sub_expiry_add(sub); /* the end, at exp */
    }
}

int rt_sub_authenticate(rt_sub_t *sub, rt_str_t token, const char **why)
{
    rt_ident_t *id = NULL;
    int err = rt_jwt_verify(token, &id, why);
    if (err != RT_OK) {
        rt_metrics_auth_failure();
        rt_log(RT_LOG_INFO, "auth: refused a token on a live %s connection: %s", sub->tp->name, *why);
        return err;
    }
    if (!sub->disconnected && sub->user_slot == NULL && rt_userlimit_admit(id->user, &sub->user_slot) != RT_OK) {
        rt_ident_free(id);
        *why = "too many connections of this user (limits.connections_per_user)";
        return RT_ERATELIMIT;
    }
    rt_sub_expiry_remove(sub);
    rt_ident_free(sub->ident);
    sub->ident = id;
    sub->auth_err = RT_OK;
    sub->expiry_noticed = 0;
    rt_sub_expiry_add(sub);
    for (size_t i = 0; i < sub->nsubs;) {
        rt_subscription_t *s = sub->subs[i];
        if (rt_auth_allows(id, s->pattern, 0) == RT_OK) {
            i++;
            continue;
        }
        char pattern[RT_TOPIC_MAX + 1];
        memcpy(pattern, s->pattern.base, s->pattern.len);
        rt_str_t p = rt_str(pattern, s->pattern.len);
        rt_sub_presence_left(sub, s);
        rt_bus->ops->interest(rt_bus, s->pattern, -1);
        rt_index_remove(&sub->w->index, s);
        sub->subs[i] = sub->subs[--sub->nsubs];
        if (sub->tp->dropped)
            sub->tp->dropped(sub, p);
    }
    return RT_OK;
}

int rt_sub_auth_state(rt_sub_t *sub)
{
    if (sub->auth_err)
        return sub->auth_err;
    return sub->ident == NULL && !rt_auth_anonymous_subscribe() ? 1 : RT_OK;
}
