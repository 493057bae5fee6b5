/*
 * Server API commands across the cluster. On the memory bus a command runs on this node only. On the NATS bus every
 * node runs it: the asking node broadcasts it on core NATS (<prefix>_api.req, over a connection of the API's own,
 * outside the stream), each node (itself included) runs its part on its workers and answers on the asker's subject
 * (<prefix>_api.rep.<node>); the answer goes to the HTTP request once every node known alive has answered, or after
 * api.timeout with the silent ones named. Nodes learn of each other from heartbeats (<prefix>_api.hb, every second;
 * gone after 5 s). A worker never waits on the network: publishing only queues, answers arrive on nats.c's threads
 * and are handed to the asking worker. DELETE /api/history also purges the topic's subject from the stream (on the
 * asker's NATS thread, before its own answer).
 */
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "api.h"
#include "config.h"
#include "namespace.h"
#include "presence.h"
#include "text.h"

#define MAX_NODES 64
#define HEARTBEAT_MS 1000
#define NODE_TTL_MS 5000
#define MAX_REPLY_TOPICS 10000
#define SWEEP_MS 3000

typedef struct node {
    char id[80];
    uint64_t seen_ms;
} node_t;

typedef struct call {
    uint64_t id;
    rt_api_cluster_cb cb;
    void *arg;
    rt_worker_t *origin;
    h2o_timeout_entry_t timer;
    char expected[MAX_NODES][80];
    int answered[MAX_NODES];
    size_t nexpected, nanswered;
    rt_api_result_t results[MAX_NODES];
    size_t nresults;
    struct call *next;
} call_t;

static struct {
    natsConnection *nc;
    natsSubscription *req_sub, *rep_sub, *hb_sub;
    jsCtx *js;
    char prefix[128], stream[128], self[80];
    pthread_mutex_t lock;
    node_t nodes[MAX_NODES];
    size_t nnodes;
    call_t *calls;
    uint64_t next_id;
    uint64_t timeout_ms;
    pthread_t hb_thread;
    atomic_int running;
} cl = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---------- this node only (memory bus, or NATS unreachable) ---------- */

typedef struct local_call {
    rt_api_cluster_cb cb;
    void *arg;
    const char *const *missing;
    size_t nmissing;
} local_call_t;

static void on_local_done(rt_api_result_t *r, void *arg)
{
    local_call_t *l = arg;
    l->cb(l->arg, r, 1, l->missing, l->nmissing);
    free(l);
}

/* ---------- results on the wire ---------- */

static void encode_cmd(rt_buf_t *b, const rt_api_cmd_t *c, uint64_t id)
{
    rt_buf_printf(b, "{\"call\":%llu,\"op\":%d,\"reconnect\":%d,\"from\":", (unsigned long long)id, c->op, c->reconnect);
    rt_json_append_string(b, rt_cstr(cl.self));
    const char *names[] = {"user", "client", "topic", "reason"}, *vals[] = {c->user, c->client, c->topic, c->reason};
    for (int i = 0; i < 4; i++) {
        rt_buf_printf(b, ",\"%s\":", names[i]);
        rt_json_append_string(b, rt_cstr(vals[i]));
    }
    rt_buf_appendc(b, "}");
}

static int field_text(const rt_json_field_t *f, char *out, size_t cap)
{
    int n = f->type == 's' ? rt_json_unescape(f->value, out, cap - 1) : -1;
    if (n < 0)
        return -1;
    out[n] = '\0';
    return 0;
}

static uint64_t field_num(const rt_json_field_t *f) { return f->type == 'n' ? strtoull(f->value.base, NULL, 10) : 0; }

static int decode_cmd(rt_str_t json, rt_api_cmd_t *c, uint64_t *id, char *from, size_t fromcap)
{
    rt_json_field_t f[12];
    int n = rt_json_object(json, f, 12);
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < n; i++) {
        rt_str_t k = f[i].key;
        int bad = 0;
        if (rt_str_eqc(k, "call"))
            *id = field_num(&f[i]);
        else if (rt_str_eqc(k, "op"))
            c->op = (int)field_num(&f[i]);
        else if (rt_str_eqc(k, "reconnect"))
            c->reconnect = (int)field_num(&f[i]);
        else if (rt_str_eqc(k, "from"))
            bad = field_text(&f[i], from, fromcap);
        else if (rt_str_eqc(k, "user"))
            bad = field_text(&f[i], c->user, sizeof(c->user));
        else if (rt_str_eqc(k, "client"))
            bad = field_text(&f[i], c->client, sizeof(c->client));
        else if (rt_str_eqc(k, "topic"))
            bad = field_text(&f[i], c->topic, sizeof(c->topic));
        else if (rt_str_eqc(k, "reason"))
            bad = field_text(&f[i], c->reason, sizeof(c->reason));
        if (bad)
            return -1;
    }
    return n > 0 && c->op >= RT_API_DISCONNECT && c->op <= RT_API_FORGET ? 0 : -1;
}

static void encode_result(rt_buf_t *b, const rt_api_result_t *r, uint64_t id)
{
    rt_buf_printf(b, "{\"call\":%llu,\"count\":%zu,\"node\":", (unsigned long long)id, r->count);
    rt_json_append_string(b, rt_cstr(r->node));
    rt_buf_appendc(b, ",\"topics\":[");
    for (size_t i = 0; i < r->ntopics && i < MAX_REPLY_TOPICS; i++) {
        rt_buf_appendc(b, i ? ",[" : "[");
        rt_json_append_string(b, rt_cstr(r->topics[i].topic));
        rt_buf_printf(b, ",%zu]", r->topics[i].n);
    }
    rt_buf_appendc(b, "],\"info\":");
    if (r->info.len)
        rt_buf_append(b, r->info.base, r->info.len);
    else
        rt_buf_appendc(b, "null");
    rt_buf_appendc(b, "}");
}

static int decode_result(rt_str_t json, rt_api_result_t *r, uint64_t *id)
{
    rt_json_field_t f[8];
    int n = rt_json_object(json, f, 8);
    memset(r, 0, sizeof(*r));
    for (int i = 0; i < n; i++) {
        rt_str_t k = f[i].key;
        if (rt_str_eqc(k, "call"))
            *id = field_num(&f[i]);
        else if (rt_str_eqc(k, "count"))
            r->count = (size_t)field_num(&f[i]);
        else if (rt_str_eqc(k, "node") && field_text(&f[i], r->node, sizeof(r->node)) != 0)
            return -1;
        else if (rt_str_eqc(k, "info") && f[i].type == 'o')
            rt_buf_append(&r->info, f[i].value.base, f[i].value.len);
        else if (rt_str_eqc(k, "topics") && f[i].type == 'a') {
            rt_str_t *items = rt_calloc(MAX_REPLY_TOPICS, sizeof(*items)), pair[2];
            int m = rt_json_array(f[i].value, items, MAX_REPLY_TOPICS);
            r->topics = rt_calloc(m > 0 ? (size_t)m : 1, sizeof(*r->topics));
            for (int j = 0; j < m; j++) {
                char name[RT_TOPIC_MAX + 1];
                rt_json_field_t tf = {{NULL, 0}, {NULL, 0}, 's'};
                if (rt_json_array(items[j], pair, 2) != 2)
                    continue;
                tf.value = pair[0];
                if (field_text(&tf, name, sizeof(name)) != 0)
                    continue;
                r->topics[r->ntopics].topic = strdup(name);
                r->topics[r->ntopics++].n = strtoull(pair[1].base, NULL, 10);
            }
            free(items);
        }
    }
    return n > 0 && r->node[0] ? 0 : -1;
}

/* ---------- the asking side ---------- */

/* Takes c out of the table (under the lock): 1 when it was there, i.e. nobody else finishes it. */
static int unlink_call(call_t *c)
{
    int found = 0;
    for (call_t **p = &cl.calls; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            found = 1;
            break;
        }
    return found;
}

/* On the asking worker: by its timer (unless the last answer took it out first and posted the end) or by that post. */
static void finish(call_t *c, int posted)
{
    if (h2o_timeout_is_linked(&c->timer))
        h2o_timeout_unlink(&c->timer);
    if (!posted) {
        pthread_mutex_lock(&cl.lock);
        int mine = unlink_call(c);
        pthread_mutex_unlock(&cl.lock); /* no answer reaches c from now on */
        if (!mine)
            return;
    }
    const char *missing[MAX_NODES];
    size_t nmissing = 0;
    for (size_t i = 0; i < c->nexpected; i++)
        if (!c->answered[i])
            missing[nmissing++] = c->expected[i];
    /* this node first, then the others by id */
    for (size_t i = 0; i < c->nresults; i++)
        if (strcmp(c->results[i].node, cl.self) == 0 && i > 0) {
            rt_api_result_t t = c->results[0];
            c->results[0] = c->results[i], c->results[i] = t;
        }
    c->cb(c->arg, c->results, c->nresults, missing, nmissing);
    for (size_t i = 0; i < c->nresults; i++)
        rt_api_result_free(&c->results[i]);
    free(c);
}

static void on_timer(h2o_timeout_entry_t *e) { finish(H2O_STRUCT_FROM_MEMBER(call_t, timer, e), 0); }

static void finish_task(void *arg) { finish(arg, 1); }

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    rt_api_result_t r;
    uint64_t id = 0;
    if (decode_result(rt_str(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), &r, &id) != 0) {
        rt_api_result_free(&r);
        natsMsg_Destroy(m);
        return;
    }
    natsMsg_Destroy(m);
    pthread_mutex_lock(&cl.lock);
    call_t *c = cl.calls;
    while (c && c->id != id)
        c = c->next;
    int complete = 0;
    if (c && c->nresults < MAX_NODES) {
        size_t k = 0;
        while (k < c->nexpected && strcmp(c->expected[k], r.node) != 0)
            k++;
        if (k < c->nexpected && !c->answered[k]) {
            c->answered[k] = 1;
            c->nanswered++;
        }
        c->results[c->nresults++] = r; /* a node unknown when asked is counted too */
        complete = c->nanswered == c->nexpected && unlink_call(c); /* out of the table: the timer leaves it alone */
        r.topics = NULL, r.ntopics = 0, r.info = (rt_buf_t){0};
    }
    pthread_mutex_unlock(&cl.lock);
    rt_api_result_free(&r);
    if (complete)
        rt_hub_post(c->origin, finish_task, c);
}

void rt_api_cluster_run(const rt_api_cmd_t *cmd, rt_api_cluster_cb cb, void *arg)
{
    if (cl.nc == NULL || natsConnection_Status(cl.nc) != NATS_CONN_STATUS_CONNECTED) {
        local_call_t *l = rt_calloc(1, sizeof(*l));
        l->cb = cb, l->arg = arg;
        static const char *const unknown[] = {"(the other nodes: NATS is not connected)"};
        if (cl.nc != NULL)
            l->missing = unknown, l->nmissing = 1;
        rt_api_local_run(cmd, rt_current_worker, on_local_done, l);
        return;
    }
    call_t *c = rt_calloc(1, sizeof(*c));
    c->cb = cb, c->arg = arg, c->origin = rt_current_worker;
    c->timer.cb = on_timer;
    uint64_t now = rt_now_ms();
    pthread_mutex_lock(&cl.lock);
    c->id = ++cl.next_id;
    snprintf(c->expected[c->nexpected++], sizeof(c->expected[0]), "%s", cl.self);
    for (size_t i = 0; i < cl.nnodes && c->nexpected < MAX_NODES; i++)
        if (rt_ms_since(cl.nodes[i].seen_ms, now) < NODE_TTL_MS && strcmp(cl.nodes[i].id, cl.self) != 0)
            snprintf(c->expected[c->nexpected++], sizeof(c->expected[0]), "%s", cl.nodes[i].id);
    c->next = cl.calls;
    cl.calls = c;
    pthread_mutex_unlock(&cl.lock);
    h2o_timeout_link(c->origin->ctx.loop, rt_worker_timeout(c->origin, cl.timeout_ms), &c->timer);
    rt_buf_t b = {0};
    encode_cmd(&b, cmd, c->id);
    char subj[200];
    snprintf(subj, sizeof(subj), "%s_api.req", cl.prefix);
    pthread_mutex_lock(&cl.lock);
    if (cl.nc != NULL) /* queued; a failure shows as missing nodes */
        natsConnection_Publish(cl.nc, subj, b.base, (int)b.len);
    pthread_mutex_unlock(&cl.lock);
    rt_buf_free(&b);
}

/* ---------- the answering side (every node, the asker included) ---------- */

typedef struct answer {
    uint64_t id;
    char to[128 + 16 + 80];
} answer_t;

static void on_local_answer(rt_api_result_t *r, void *arg)
{
    answer_t *a = arg;
    rt_buf_t b = {0};
    encode_result(&b, r, a->id);
    pthread_mutex_lock(&cl.lock);
    if (cl.nc != NULL) /* not stopped meanwhile */
        natsConnection_Publish(cl.nc, a->to, b.base, (int)b.len);
    pthread_mutex_unlock(&cl.lock);
    rt_buf_free(&b);
    free(a);
}

static void purge(const char *topic)
{
    jsOptions o;
    jsOptions_Init(&o);
    char subj[400];
    snprintf(subj, sizeof(subj), "%s.%s", cl.prefix, topic);
    o.Stream.Purge.Subject = subj;
    jsErrCode jerr = 0;
    natsStatus s = js_PurgeStream(cl.js, cl.stream, &o, &jerr);
    if (s != NATS_OK)
        rt_log(RT_LOG_WARN, "api: purging %s from stream %s: %s (%d)", subj, cl.stream, natsStatus_GetText(s), (int)jerr);
}

static void on_request(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)nc, (void)sub, (void)closure;
    rt_api_cmd_t cmd;
    answer_t *a = rt_calloc(1, sizeof(*a));
    char from[80] = "";
    if (decode_cmd(rt_str(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m)), &cmd, &a->id, from, sizeof(from)) != 0 ||
        rt_topic_check(rt_cstr(from), 0, NULL) != RT_OK) {
        free(a);
        natsMsg_Destroy(m);
        return;
    }
    natsMsg_Destroy(m);
    if (cmd.op == RT_API_FORGET && strcmp(from, cl.self) == 0)
        purge(cmd.topic); /* once, by the asker, on this NATS thread: before the answer, so a resume after it sees the gap */
    snprintf(a->to, sizeof(a->to), "%s_api.rep.%s", cl.prefix, from);
    rt_api_local_run(&cmd, NULL, on_local_answer, a);
}

static void on_heartbeat(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    (void)sub, (void)closure;
    char id[80];
    int n = natsMsg_GetDataLength(m);
    if (n > 0 && (size_t)n < sizeof(id)) {
        memcpy(id, natsMsg_GetData(m), (size_t)n);
        id[n] = '\0';
        uint64_t now = rt_now_ms();
        pthread_mutex_lock(&cl.lock);
        size_t i = 0, oldest = 0;
        while (i < cl.nnodes && strcmp(cl.nodes[i].id, id) != 0)
            i++;
        int news = i == cl.nnodes || rt_ms_since(cl.nodes[i].seen_ms, now) >= NODE_TTL_MS; /* unknown, or back */
        if (i == cl.nnodes && cl.nnodes == MAX_NODES) { /* full: the longest silent one goes */
            for (size_t k = 1; k < cl.nnodes; k++)
                if (cl.nodes[k].seen_ms < cl.nodes[oldest].seen_ms)
                    oldest = k;
            i = oldest;
        } else if (i == cl.nnodes) {
            cl.nnodes++;
        }
        snprintf(cl.nodes[i].id, sizeof(cl.nodes[i].id), "%s", id);
        cl.nodes[i].seen_ms = now;
        pthread_mutex_unlock(&cl.lock);
        if (news && strcmp(id, cl.self) != 0) { /* a node just started: it learns of this one now, not in a second */
            char subj[200];
            snprintf(subj, sizeof(subj), "%s_api.hb", cl.prefix);
            natsConnection_PublishString(nc, subj, cl.self);
        }
    }
    natsMsg_Destroy(m);
}

/* Whether this node is the one alive with the smallest id (the one that sweeps). */
static int first_node(void)
{
    uint64_t now = rt_now_ms();
    int first = 1;
    pthread_mutex_lock(&cl.lock);
    for (size_t i = 0; i < cl.nnodes; i++)
        if (rt_ms_since(cl.nodes[i].seen_ms, now) < NODE_TTL_MS && strcmp(cl.nodes[i].id, cl.self) < 0)
            first = 0;
    pthread_mutex_unlock(&cl.lock);
    return first;
}

/* Namespaces' history.max_messages in the stream: one stream holds every topic with one per-subject limit (the largest
 * namespace's, see bus_nats.c), so the subjects of smaller namespaces (and of no namespace, when a namespace is larger
 * than the global limit) are trimmed here with purges that keep their newest messages. */
static void sweep(void)
{
    int64_t stream_max = rt_cfg_int("history.max_messages"), age = rt_cfg_int("history.max_age");
    size_t global = (size_t)stream_max, n = rt_ns_count();
    rt_ns_stream_limits(&stream_max, &age);
    int needed = (int64_t)global < stream_max;
    for (size_t i = 0; i < n; i++)
        needed |= rt_ns_at(i)->max_messages && (int64_t)rt_ns_at(i)->max_messages < stream_max;
    if (!needed || !first_node())
        return;
    char filter[200];
    snprintf(filter, sizeof(filter), "%s.>", cl.prefix);
    jsOptions o;
    jsOptions_Init(&o);
    o.Stream.Info.SubjectsFilter = filter;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, cl.js, cl.stream, &o, &jerr) != NATS_OK)
        return;
    size_t plen = strlen(cl.prefix) + 1;
    for (int i = 0; si->State.Subjects && i < si->State.Subjects->Count; i++) {
        const jsStreamStateSubject *sub = &si->State.Subjects->List[i];
        if (strlen(sub->Subject) <= plen)
            continue;
        const rt_ns_t *ns = rt_ns_of(rt_cstr(sub->Subject + plen));
        size_t keep = ns && ns->max_messages ? ns->max_messages : global;
        if (sub->Msgs <= keep)
            continue;
        jsOptions po;
        jsOptions_Init(&po);
        po.Stream.Purge.Subject = sub->Subject;
        po.Stream.Purge.Keep = keep;
        js_PurgeStream(cl.js, cl.stream, &po, &jerr);
    }
    jsStreamInfo_Destroy(si);
}

static void *heartbeats(void *arg)
{
    (void)arg;
    char subj[200];
    snprintf(subj, sizeof(subj), "%s_api.hb", cl.prefix);
    for (unsigned tick = 0; atomic_load(&cl.running); tick++) {
        if (tick % (HEARTBEAT_MS / 100) == 0)
            natsConnection_PublishString(cl.nc, subj, cl.self);
        if (tick % (SWEEP_MS / 100) == SWEEP_MS / 200)
            sweep();
        usleep(100 * 1000); /* a stop waits at most this long */
    }
    return NULL;
}

static void on_connected(natsConnection *nc, void *closure)
{
    (void)nc, (void)closure;
    rt_log(RT_LOG_INFO, "api: connected to NATS");
}

int rt_api_cluster_start(char *err, size_t errlen)
{
    if (strcmp(rt_cfg_str("bus"), "nats") != 0)
        return 0; /* on NATS even without API keys: the namespaces' sweep runs here, and the other nodes may ask */
    cl.timeout_ms = (uint64_t)rt_cfg_int("api.timeout");
    snprintf(cl.self, sizeof(cl.self), "%s", rt_presence_node());
    snprintf(cl.prefix, sizeof(cl.prefix), "%s", rt_cfg_str("nats.subject_prefix"));
    const char *stream = rt_cfg_str("nats.stream");
    for (size_t i = 0; i < sizeof(cl.stream) - 1 && (stream[0] ? stream[i] : cl.prefix[i]); i++) { /* as the bus names it */
        char ch = stream[0] ? stream[i] : cl.prefix[i];
        cl.stream[i] = stream[0] ? ch : ch == '.' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
    }
    const rt_cfg_value_t *urls = rt_cfg("nats.url");
    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetServers(o, (const char **)urls->list, (int)urls->nlist);
    natsOptions_SetName(o, "rtbroker-api");
    natsOptions_SetMaxReconnect(o, -1);
    natsOptions_SetRetryOnFailedConnect(o, true, on_connected, NULL); /* with a callback: never blocks the start */
    const char *tok = rt_cfg_str("nats.token"), *user = rt_cfg_str("nats.user"), *creds = rt_cfg_str("nats.creds");
    if (tok[0])
        natsOptions_SetToken(o, tok);
    if (user[0])
        natsOptions_SetUserInfo(o, user, rt_cfg_str("nats.password"));
    if (creds[0])
        natsOptions_SetUserCredentialsFromFiles(o, creds, NULL);
    if (rt_cfg_str("nats.tls_ca")[0]) { /* the bus checked these files already */
        natsOptions_SetSecure(o, true);
        natsOptions_LoadCATrustedCertificates(o, rt_cfg_str("nats.tls_ca"));
    }
    if (rt_cfg_str("nats.tls_cert")[0])
        natsOptions_LoadCertificatesChain(o, rt_cfg_str("nats.tls_cert"), rt_cfg_str("nats.tls_key"));
    natsStatus s = natsConnection_Connect(&cl.nc, o);
    natsOptions_Destroy(o);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) {
        snprintf(err, errlen, "api: cannot connect to NATS: %s", natsStatus_GetText(s));
        return -1;
    }
    char subj[300];
    snprintf(subj, sizeof(subj), "%s_api.req", cl.prefix);
    natsConnection_Subscribe(&cl.req_sub, cl.nc, subj, on_request, NULL);
    snprintf(subj, sizeof(subj), "%s_api.rep.%s", cl.prefix, cl.self);
    natsConnection_Subscribe(&cl.rep_sub, cl.nc, subj, on_reply, NULL);
    snprintf(subj, sizeof(subj), "%s_api.hb", cl.prefix);
    natsConnection_Subscribe(&cl.hb_sub, cl.nc, subj, on_heartbeat, NULL);
    natsConnection_JetStream(&cl.js, cl.nc, NULL);
    atomic_store(&cl.running, 1);
    pthread_create(&cl.hb_thread, NULL, heartbeats, NULL);
    return 0;
}

void rt_api_cluster_stop(void)
{
    if (cl.nc == NULL)
        return;
    atomic_store(&cl.running, 0);
    pthread_join(cl.hb_thread, NULL);
    natsConnection_Close(cl.nc); /* no new callbacks */
    pthread_mutex_lock(&cl.lock);
    natsConnection *nc = cl.nc;
    cl.nc = NULL; /* answers still being made are dropped */
    pthread_mutex_unlock(&cl.lock);
    natsSubscription_Destroy(cl.req_sub);
    natsSubscription_Destroy(cl.rep_sub);
    natsSubscription_Destroy(cl.hb_sub);
    jsCtx_Destroy(cl.js);
    natsConnection_Destroy(nc);
}
