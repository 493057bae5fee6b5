/*
 * A subscriber's side of presence (services presence_join, presence_snapshot, sub_client):
 * the identity it joins with is taken once, at its first join, so that its leaves match
 * its joins even if the connection's token is refreshed in between. A client id handed
 * back is taken only with the MAC this cluster gave it for the same user (presence_client.c).
 */
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "hub.h"
#include "presence.h"

struct rt_sub_presence {
    char client[RT_CLIENT_MAX + 1];
    size_t client_len;
    char key[RT_CLIENT_KEY_MAX + 1]; /* what the client hands back to stay this member (long-poll) */
    int linger;
    char *user, *info;
};

static rt_subscription_t *find(rt_sub_t *sub, rt_str_t topic)
{
    for (size_t i = 0; i < sub->nsubs; i++)
        if (rt_str_eq(sub->subs[i]->pattern, topic))
            return sub->subs[i];
    return NULL;
}

static int exact(rt_str_t topic)
{
    int wild = 0;
    return rt_topic_check(topic, 1, &wild) == RT_OK && !wild;
}

static rt_str_t user_of(const rt_sub_presence_t *p) { return rt_cstr(p->user); }

static rt_str_t sub_user(rt_sub_t *sub) { return rt_cstr(sub->ident ? sub->ident->user : ""); }

int rt_sub_presence_join(rt_sub_t *sub, rt_str_t topic, rt_str_t client, int flags)
{
    if (!exact(topic))
        return RT_ETOPIC;
    rt_subscription_t *s = find(sub, topic);
    if (s == NULL)
        return RT_EINVAL;
    if (s->presence)
        return RT_OK;
    rt_sub_presence_t *p = sub->pres;
    rt_str_t id = {NULL, 0};
    if (p == NULL && client.len && rt_presence_client_check(client, sub_user(sub), &id) != RT_OK)
        return RT_EID;
    if (p == NULL) {
        p = sub->pres = rt_calloc(1, sizeof(*p));
        if (id.len) {
            memcpy(p->client, id.base, id.len);
            p->client_len = id.len;
        } else {
            rt_presence_new_client(p->client);
            p->client_len = strlen(p->client);
        }
        rt_presence_client_key(rt_str(p->client, p->client_len), sub_user(sub), p->key);
        p->linger = (flags & RT_PRESENCE_LINGER) != 0;
        p->user = strdup(sub->ident && sub->ident->user[0] ? sub->ident->user : "");
        p->info = sub->ident && sub->ident->info ? strdup(sub->ident->info) : NULL;
        if (p->user == NULL)
            abort();
    }
    s->presence = 1;
    rt_presence_join(topic, user_of(p), rt_str(p->client, p->client_len), rt_cstr(p->info), p->linger);
    return RT_OK;
}

/* presence=1 (every topic of the request) or presence=TOPIC, repeated (those, which must be among its topics);
 * client=KEY continues a lingering (long-poll) member, and must be a key given to this user. */
int rt_sub_presence_request(rt_sub_t *sub, int flags)
{
    rt_str_t v, client = {NULL, 0};
    if (sub->req == NULL || !rt_req_query(sub->req, "presence", 0, &v))
        return 0;
    int all = v.len == 0 || rt_str_eqc(v, "1") || rt_str_eqc(v, "true");
    if (all) {
        for (size_t i = 0; i < sub->nsubs; i++)
            if (!exact(sub->subs[i]->pattern))
                return RT_ETOPIC;
    } else {
        for (size_t i = 0; rt_req_query(sub->req, "presence", i, &v); i++)
            if (!exact(v) || find(sub, v) == NULL)
                return RT_ETOPIC;
    }
    rt_str_t id;
    if ((flags & RT_PRESENCE_LINGER) && rt_req_query(sub->req, "client", 0, &client) && client.len && sub->pres == NULL &&
        rt_presence_client_check(client, sub_user(sub), &id) != RT_OK)
        return RT_EID;
    if (all) {
        for (size_t i = 0; i < sub->nsubs; i++)
            rt_sub_presence_join(sub, sub->subs[i]->pattern, client, flags);
    } else {
        for (size_t i = 0; rt_req_query(sub->req, "presence", i, &v); i++)
            rt_sub_presence_join(sub, v, client, flags);
    }
    return 1;
}

void rt_sub_presence_left(rt_sub_t *sub, rt_subscription_t *s)
{
    if (!s->presence || sub->pres == NULL)
        return;
    s->presence = 0;
    rt_presence_leave(s->pattern, user_of(sub->pres), rt_str(sub->pres->client, sub->pres->client_len));
}

void rt_sub_presence_free(rt_sub_t *sub)
{
    if (sub->pres == NULL)
        return;
    free(sub->pres->user);
    free(sub->pres->info);
    free(sub->pres);
    sub->pres = NULL;
}

rt_str_t rt_sub_client(rt_sub_t *sub)
{
    return sub->pres ? rt_str(sub->pres->client, sub->pres->client_len) : rt_str(NULL, 0);
}

rt_str_t rt_sub_client_key(rt_sub_t *sub) { return sub->pres ? rt_cstr(sub->pres->key) : rt_str(NULL, 0); }

int rt_sub_presence_snapshot(rt_sub_t *sub, rt_str_t topic, rt_str_t *json)
{
    rt_buf_t *buf = &sub->w->scratch;
    if (!exact(topic))
        return RT_ETOPIC;
    int err = sub->auth_err ? sub->auth_err : rt_auth_allows(sub->ident, topic, 0);
    if (err != RT_OK)
        return err;
    buf->len = 0;
    rt_presence_snapshot(topic, buf);
    *json = rt_str(buf->base, buf->len);
    return RT_OK;
}
