/*
 * This node's part of a server API command: posted to every worker, each acts on the subscribers it owns (disconnect,
 * server-side subscribe and unsubscribe, counts), and the last one hands the merged result to the worker that asked.
 * Also the subscriber hooks the API needs (disconnect details, which connections take server-side subscriptions).
 * Never blocks on the network; the bus is asked only for what it holds (retained counts, forgetting a topic).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "config.h"
#include "map.h"
#include "ops.h"
#include "presence.h"
#include "text.h"
#include "userlimit.h"

static uint64_t started_ms;

uint64_t rt_api_started_ms(void) { return started_ms; }

__attribute__((constructor)) static void note_start(void) { started_ms = rt_now_ms(); }

typedef struct job {
    rt_api_cmd_t cmd;
    rt_worker_t *origin;
    void (*done)(rt_api_result_t *r, void *arg);
    void *arg;
    atomic_size_t left;
    pthread_mutex_t lock;
    rt_api_result_t res;
    rt_map_t counts; /* RT_API_TOPICS: topic -> rt_api_count_t * */
} job_t;

void rt_api_result_free(rt_api_result_t *r)
{
    for (size_t i = 0; i < r->ntopics; i++)
        free(r->topics[i].topic);
    free(r->topics);
    rt_buf_free(&r->info);
    memset(r, 0, sizeof(*r));
}

/* ---------- subscriber hooks ---------- */

void rt_api_accept_server_topics(rt_sub_t *sub) { sub->server_topics = 1; }

int rt_api_disconnect_info(rt_sub_t *sub, rt_str_t *json)
{
    *json = sub->disconnected ? rt_cstr(sub->end_json) : RT_STRLIT("{\"reason\":null,\"reconnect\":true}");
    return sub->disconnected ? sub->reconnect : 1;
}

void rt_api_sub_gone(rt_sub_t *sub)
{
    if (sub->disconnected)
        free(sub->end_json);
    else
        rt_userlimit_release(sub->user_slot);
    sub->user_slot = NULL;
    sub->disconnected = 0;
}

static int user_is(rt_sub_t *sub, const char *user)
{
    return sub->ident != NULL && sub->ident->user[0] != '\0' && strcmp(sub->ident->user, user) == 0;
}

/* A notice {"type":TYPE,"topic":T} through the transport, for connections that show them. */
static void notice(rt_sub_t *sub, const char *event, rt_str_t topic)
{
    if (!sub->server_topics)
        return;
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"topic\":");
    rt_json_append_string(&b, topic);
    rt_buf_appendc(&b, "}");
    rt_msg_t *m = rt_msg_new(topic, rt_cstr(event), RT_STRLIT("application/json"), rt_str(b.base, b.len));
    m->flags |= RT_MSG_EPHEMERAL | RT_MSG_NOTICE;
    rt_buf_free(&b);
    sub->tp->deliver(sub, m);
    rt_msg_unref(m);
}

static int subscribed_to(rt_sub_t *sub, rt_str_t topic)
{
    for (size_t i = 0; i < sub->nsubs; i++)
        if (rt_str_eq(sub->subs[i]->pattern, topic))
            return 1;
    return 0;
}

static void do_disconnect(job_t *j, rt_sub_t *sub, size_t *n)
{
    const rt_api_cmd_t *c = &j->cmd;
    if (c->user[0] ? !user_is(sub, c->user) : !rt_str_eqc(rt_sub_client(sub), c->client))
        return;
    if (!sub->disconnected) {
        rt_buf_t b = {0};
        rt_buf_appendc(&b, "{\"reason\":");
        if (c->reason[0])
            rt_json_append_string(&b, rt_cstr(c->reason));
        else
            rt_buf_appendc(&b, "null");
        rt_buf_printf(&b, ",\"reconnect\":%s}", c->reconnect ? "true" : "false");
        rt_buf_append(&b, "", 1);
        rt_userlimit_release(sub->user_slot); /* it is on its way out: the user may connect again at once */
        sub->end_json = b.base;
        sub->disconnected = 1;
        sub->reconnect = c->reconnect != 0;
    }
    rt_sub_schedule_end(sub, RT_END_DISCONNECT);
    (*n)++;
}

static void do_subscribe(job_t *j, rt_sub_t *sub, size_t *n)
{
    rt_str_t topic = rt_cstr(j->cmd.topic);
    if (!user_is(sub, j->cmd.user) || !sub->server_topics)
        return;
    if (subscribed_to(sub, topic)) {
        (*n)++;
        return;
    }
    rt_sub_opts_t o = {&topic, 1, {NULL, 0}, 0};
    sub->granting = 1;
    int err = rt_sub_subscribe(sub, &o);
    sub->granting = 0;
    if (err != RT_OK)
        return; /* e.g. limits.max_topics: this connection is not counted */
    notice(sub, "rt.subscribed", topic);
    (*n)++;
}

static void do_unsubscribe(job_t *j, rt_sub_t *sub, size_t *n)
{
    rt_str_t topic = rt_cstr(j->cmd.topic);
    if (!user_is(sub, j->cmd.user) || rt_sub_unsubscribe(sub, topic) != RT_OK)
        return;
    notice(sub, "rt.unsubscribed", topic);
    (*n)++;
}

/* Subscribed topics and patterns under the filter j->cmd.topic (empty: all). */
static void do_topics(job_t *j, rt_sub_t *sub, rt_map_t *mine)
{
    rt_str_t filter = rt_cstr(j->cmd.topic);
    for (size_t i = 0; i < sub->nsubs; i++) {
        rt_str_t p = sub->subs[i]->pattern;
        int wild = 0;
        rt_topic_check(p, 1, &wild);
        if (filter.len && !(wild ? rt_topic_covers(filter, p) : rt_topic_match(filter, p)))
            continue;
        rt_api_count_t *e = rt_map_get(mine, p);
        if (e == NULL) {
            e = rt_calloc(1, sizeof(*e));
            e->topic = rt_strndup(p);
            rt_map_put(mine, rt_cstr(e->topic), e);
        }
        e->n++;
    }
}

static void do_topic(job_t *j, rt_sub_t *sub, size_t *n)
{
    rt_str_t topic = rt_cstr(j->cmd.topic);
    for (size_t i = 0; i < sub->nsubs; i++)
        if (rt_topic_match(sub->subs[i]->pattern, topic)) {
            (*n)++;
            return;
        }
}

static void merge_topics(job_t *j, rt_map_t *mine)
{
    size_t b = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(mine, e, &b)) != NULL;) {
        rt_api_count_t *c = e->value, *have = rt_map_get(&j->counts, e->key);
        if (have == NULL) {
            rt_map_put(&j->counts, e->key, c);
            continue;
        }
        have->n += c->n;
        free(c->topic);
        free(c);
    }
    rt_map_free(mine);
}

static void run_done(void *arg)
{
    job_t *j = arg;
    if (j->cmd.op == RT_API_TOPICS) {
        j->res.topics = rt_calloc(j->counts.count + 1, sizeof(*j->res.topics));
        size_t b = 0;
        for (rt_map_entry_t *e = NULL; (e = rt_map_next(&j->counts, e, &b)) != NULL;) {
            rt_api_count_t *c = e->value;
            j->res.topics[j->res.ntopics++] = *c;
            free(c);
        }
        rt_map_free(&j->counts);
    }
    j->done(&j->res, j->arg);
    rt_api_result_free(&j->res);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

static void run_each(void *arg)
{
    job_t *j = arg;
    rt_worker_t *w = rt_current_worker;
    size_t n = 0;
    rt_map_t mine = {0};
    /* a subscriber may end while walked (only scheduled: rt_sub_schedule_end runs on the next loop turn), never unlinked here */
    for (h2o_linklist_t *l = w->subs.next; l != &w->subs; l = l->next) {
        rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, link, l);
        if (sub->closed || sub->ending)
            continue;
        switch (j->cmd.op) {
        case RT_API_DISCONNECT: do_disconnect(j, sub, &n); break;
        case RT_API_SUBSCRIBE: do_subscribe(j, sub, &n); break;
        case RT_API_UNSUBSCRIBE: do_unsubscribe(j, sub, &n); break;
        case RT_API_TOPICS: do_topics(j, sub, &mine); break;
        case RT_API_TOPIC: do_topic(j, sub, &n); break;
        }
    }
    pthread_mutex_lock(&j->lock);
    j->res.count += n;
    if (j->cmd.op == RT_API_TOPICS)
        merge_topics(j, &mine);
    pthread_mutex_unlock(&j->lock);
    if (atomic_fetch_sub(&j->left, 1) == 1)
        rt_hub_post(j->origin, run_done, j);
}

/* What the node itself answers, without the workers. */
static void node_info(rt_buf_t *b)
{
    rt_buf_appendc(b, "{\"id\":");
    rt_json_append_string(b, rt_cstr(rt_presence_node()));
    rt_buf_appendc(b, ",\"version\":\"" RT_VERSION "\",\"uptime_s\":");
    rt_buf_printf(b, "%llu,\"bus\":", (unsigned long long)(rt_ms_since(started_ms, rt_now_ms()) / 1000));
    rt_json_append_string(b, rt_cstr(rt_bus->ops->name));
    rt_buf_printf(b, ",\"ready\":%s,\"workers\":%zu,\"connections\":", rt_bus->ops->ready(rt_bus) ? "true" : "false",
                  rt_nworkers);
    rt_metrics_conns_json(b);
    rt_buf_appendc(b, "}");
}

void rt_api_local_run(const rt_api_cmd_t *cmd, rt_worker_t *origin, void (*done)(rt_api_result_t *r, void *arg), void *arg)
{
    job_t *j = rt_calloc(1, sizeof(*j));
    j->cmd = *cmd;
    j->origin = origin ? origin : &rt_workers[0];
    j->done = done;
    j->arg = arg;
    pthread_mutex_init(&j->lock, NULL);
    snprintf(j->res.node, sizeof(j->res.node), "%s", rt_presence_node());
    if (cmd->op == RT_API_INFO || cmd->op == RT_API_FORGET) {
        if (cmd->op == RT_API_INFO)
            node_info(&j->res.info);
        else
            j->res.count = rt_bus->ops->forget ? rt_bus->ops->forget(rt_bus, rt_cstr(cmd->topic)) : 0;
        rt_hub_post(j->origin, run_done, j);
        return;
    }
    atomic_store(&j->left, rt_nworkers);
    for (size_t i = 0; i < rt_nworkers; i++)
        rt_hub_post(&rt_workers[i], run_each, j);
}
