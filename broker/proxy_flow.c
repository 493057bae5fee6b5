/*
 * What waits for the application backend: a subscribe request (connect, then each topic it names) before its
 * transport sees it; a live connection's subscribe (rt.v1 `sub`, through the subscribe_ask service) and publish;
 * POST /pub. Each keeps what it needs until the verdict and lets go when its request or connection goes away.
 * The calls themselves are proxy.c's.
 */
#include "proxy.h"

#include <stdlib.h>

#include "http.h"
#include "hub.h"
#include "presence.h"
#include "text.h"

/* What gate_finish hands to the subscriber that the transport opens during tp->start (rt_proxy_take_verdict). */
static __thread rt_ident_t *grant;
static __thread int refusal;
static __thread int approving; /* a subscribe the backend allowed is being made */

int rt_proxy_take_verdict(rt_sub_t *sub)
{
    if (refusal) { /* the transport tells the client (WebSocket: a close code a browser can read) */
        sub->auth_err = refusal;
        refusal = 0;
        return 1;
    }
    if (grant) { /* the backend's identity replaces the request's own credentials */
        sub->ident = grant;
        grant = NULL;
        return 1;
    }
    return 0;
}

int rt_proxy_gates_requests(void) { return rt_proxy_enabled(RT_PROXY_CONNECT) || rt_proxy_enabled(RT_PROXY_SUBSCRIBE); }
int rt_proxy_subscribe_approved(void) { return approving || !rt_proxy_enabled(RT_PROXY_SUBSCRIBE); }

/* ------------------------------------------------------------------ subscribe requests */

#define GATE_MAX_TOPICS 64

typedef struct gate gate_t;
typedef struct gate_slot {
    gate_t *g;
    rt_proxy_call_t *call; /* NULL once answered */
} gate_slot_t;

/* A subscribe request waiting for the backend. The anchor lives in the request's pool: when h2o disposes the
 * request first (the client went away), the calls are dropped. */
struct gate {
    h2o_req_t *req;
    const rt_transport_t *tp;
    gate_t **anchor;
    gate_slot_t slots[GATE_MAX_TOPICS];
    size_t nslots, waiting;
    rt_ident_t *grant;
    rt_proxy_verdict_t refusal; /* the first refusal; err RT_OK while none */
    int approved;               /* the backend allowed each topic the request names */
    int sio;                    /* Socket.IO: every refusal goes to the plugin, which tells it as CONNECT_ERROR */
    char sid[RT_PROXY_SID_MAX + 1]; /* the Engine.IO session whose verdict this connect call gives, or "" */
    char client[RT_CLIENT_MAX + 1];
};

static void gate_free(gate_t *g)
{
    for (size_t i = 0; i < g->nslots; i++)
        if (g->slots[i].call)
            rt_proxy_cancel(g->slots[i].call);
    if (g->sid[0]) /* gone before its session's verdict: the session's next request asks */
        rt_proxy_sio_forget(g->sid);
    rt_ident_free(g->grant);
    free(g);
}

static void on_gate_req_gone(void *p)
{
    gate_t *g = *(gate_t **)p;
    if (g)
        gate_free(g);
}

void rt_proxy_start(h2o_req_t *req, const rt_transport_t *tp, int err, rt_ident_t *granted, int approve)
{
    if (err != RT_OK)
        rt_ident_free(granted);
    grant = err == RT_OK ? granted : NULL;
    refusal = err;
    approving = err == RT_OK && approve;
    tp->start((rt_request_t *)req);
    approving = 0;
    refusal = 0;
    if (grant) /* the transport answered without opening a subscriber */
        rt_ident_free(grant);
    grant = NULL;
}

static void gate_finish(gate_t *g)
{
    h2o_req_t *req = g->req;
    const rt_transport_t *tp = g->tp;
    *g->anchor = NULL;
    rt_proxy_verdict_t *v = &g->refusal;
    if (v->err == RT_OK || g->sio || (req->upgrade.base != NULL && v->err != RT_EUNAVAILABLE)) {
        /* allowed, or a WebSocket refused after its upgrade (with its close code, which a browser can read), or
         * Socket.IO (a CONNECT_ERROR on either Engine.IO transport) */
        int approve = g->sio ? rt_proxy_sio_poll(req) : g->approved || !rt_proxy_enabled(RT_PROXY_SUBSCRIBE);
        rt_proxy_start(req, tp, v->err, g->grant, approve);
        g->grant = NULL;
    } else {
        rt_http_error_status(req, rt_err_status(v->err), rt_strerror(v->err), v->reason);
    }
    gate_free(g);
}

/* One verdict in; the request goes on once none is awaited. */
static void gate_note(gate_t *g, rt_proxy_verdict_t *v)
{
    if (v->err != RT_OK && g->refusal.err == RT_OK) {
        g->refusal = *v;
        g->refusal.grant = NULL, g->refusal.data = NULL;
    }
    rt_ident_free(v->grant); /* only a connect grants, and it is kept apart */
    free(v->data);
    if (--g->waiting == 0)
        gate_finish(g);
}

static void on_gate_subscribe(void *arg, rt_proxy_verdict_t *v)
{
    gate_slot_t *s = arg;
    s->call = NULL;
    gate_note(s->g, v);
}

static void gate_ask(gate_t *g, int event, rt_str_t topic, rt_proxy_done_t done)
{
    rt_buf_t b = {0};
    rt_proxy_describe(&b, event, rt_cstr(g->client), g->tp->name, g->req, NULL, g->grant);
    if (event == RT_PROXY_SUBSCRIBE) {
        rt_buf_appendc(&b, ",\"topic\":");
        rt_json_append_string(&b, topic);
    }
    rt_buf_appendc(&b, "}");
    gate_slot_t *s = &g->slots[g->nslots++];
    s->g = g;
    rt_proxy_verdict_t now;
    g->waiting++;
    s->call = rt_proxy_ask(event, rt_str(b.base, b.len), done, s, &now);
    rt_buf_free(&b);
    if (s->call == NULL)
        done(s, &now);
}

/* The topics the request names, each asked about (in parallel). The caller holds g->waiting. */
static void gate_subscribes(gate_t *g)
{
    rt_str_t topics[GATE_MAX_TOPICS - 1];
    /* Socket.IO names its topics in events, each asked about then (subscribe_ask) */
    int n = rt_proxy_enabled(RT_PROXY_SUBSCRIBE) && !g->sio ? rt_req_topics(g->req, topics, GATE_MAX_TOPICS - 1) : 0;
    /* no topic (rt.v1 subscribes with ops: each is asked then) or a bad list: nothing is approved, and the
     * transport answers as without a proxy */
    g->approved = n > 0;
    for (int i = 0; i < n && g->refusal.err == RT_OK; i++)
        gate_ask(g, RT_PROXY_SUBSCRIBE, topics[i], on_gate_subscribe);
}

static void on_gate_connect(void *arg, rt_proxy_verdict_t *v)
{
    gate_slot_t *s = arg;
    gate_t *g = s->g;
    s->call = NULL;
    if (g->sid[0]) { /* the session's other requests get this verdict */
        rt_proxy_sio_keep(g->sid, v, v->grant);
        g->sid[0] = '\0';
    }
    if (v->err == RT_OK) {
        g->grant = v->grant; /* the subscribe calls describe this identity */
        v->grant = NULL;
        gate_subscribes(g);
    }
    gate_note(g, v); /* last: it may finish the request */
}

void rt_proxy_request(h2o_req_t *req, const rt_transport_t *tp)
{
    /* Socket.IO: connect is asked once per Engine.IO session (a polling session spans many requests): at its first
     * request after the handshake, or at a WebSocket's own handshake */
    int sio = strcmp(tp->name, "socketio") == 0, keep = 0;
    rt_str_t sid = {0}, transport;
    if (sio && !rt_proxy_enabled(RT_PROXY_CONNECT)) {
        rt_proxy_start(req, tp, RT_OK, NULL, rt_proxy_sio_poll(req));
        return;
    }
    if (sio && rt_req_query(req, "sid", 0, &sid)) {
        if ((keep = rt_proxy_sio_lookup(req, tp, sid)) == 1)
            return;
    } else if (sio && !(rt_req_query(req, "transport", 0, &transport) && rt_str_eqc(transport, "websocket"))) {
        rt_proxy_start(req, tp, RT_OK, NULL, 0); /* a polling handshake: asked at the session's first request */
        return;
    }
    gate_t *g = rt_calloc(1, sizeof(*g));
    g->req = req;
    g->tp = tp;
    g->sio = sio;
    if (keep == 0 && sid.len)
        snprintf(g->sid, sizeof(g->sid), "%.*s", (int)sid.len, sid.base);
    rt_str_t given;
    if (rt_req_query(req, "client", 0, &given) && rt_presence_client_ok(given))
        snprintf(g->client, sizeof(g->client), "%.*s", (int)given.len, given.base);
    else
        rt_presence_new_client(g->client);
    g->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*g->anchor), on_gate_req_gone);
    *g->anchor = g;
    if (rt_proxy_enabled(RT_PROXY_CONNECT)) {
        gate_ask(g, RT_PROXY_CONNECT, rt_str(NULL, 0), on_gate_connect);
        return;
    }
    g->waiting++; /* held while asking: a verdict given at once must not finish the request under the loop */
    gate_subscribes(g);
    rt_proxy_verdict_t none = {0};
    gate_note(g, &none);
}

/* ------------------------------------------------------------------ live connections */

/* The start of a call on behalf of a connection: its identity, its client id and, while its request lives
 * (SSE, NDJSON), the forwarded headers; an upgraded WebSocket has none left. */
static void describe_sub(rt_buf_t *b, int event, rt_sub_t *sub, rt_str_t topic)
{
    rt_proxy_describe(b, event, rt_sub_client(sub), sub->tp->name, sub->req, sub->sock, sub->ident);
    rt_buf_appendc(b, ",\"topic\":");
    rt_json_append_string(b, topic);
}

typedef struct sub_wait {
    rt_sub_t *sub;
    void (*done)(rt_sub_t *sub, int err, const char *why, void *arg);
    void *arg;
} sub_wait_t;

static void on_sub_verdict(void *arg, rt_proxy_verdict_t *v)
{
    sub_wait_t *w = arg;
    if (w->sub->closed) {
        free(w->arg); /* the plugin's context for an answer nobody can receive */
    } else {
        approving = v->err == RT_OK;
        w->done(w->sub, v->err, v->reason, w->arg);
        approving = 0;
    }
    rt_ident_free(v->grant);
    free(v->data);
    rt_sub_put(w->sub);
    free(w);
}

int rt_proxy_subscribe_ask(rt_sub_t *sub, rt_str_t topic, void (*done)(rt_sub_t *sub, int err, const char *why, void *arg),
                           void *arg)
{
    if (!rt_proxy_enabled(RT_PROXY_SUBSCRIBE))
        return 0;
    sub_wait_t *w = rt_calloc(1, sizeof(*w));
    w->sub = sub, w->done = done, w->arg = arg;
    rt_sub_hold(sub);
    rt_buf_t b = {0};
    describe_sub(&b, RT_PROXY_SUBSCRIBE, sub, topic);
    rt_buf_appendc(&b, "}");
    rt_proxy_verdict_t now;
    if (rt_proxy_ask(RT_PROXY_SUBSCRIBE, rt_str(b.base, b.len), on_sub_verdict, w, &now) == NULL)
        on_sub_verdict(w, &now);
    rt_buf_free(&b);
    return 1;
}

/* ------------------------------------------------------------------ publishes */

/* The payload as the call's "data": the JSON itself when published as valid JSON, a string when UTF-8, else
 * base64 with "encoding":"base64". */
static void append_data(rt_buf_t *b, rt_str_t data, rt_str_t ctype)
{
    rt_buf_appendc(b, ",\"data\":");
    if (ctype.len >= 16 && strncasecmp(ctype.base, "application/json", 16) == 0 && rt_json_valid(data.base, data.len)) {
        rt_json_append_compact(b, data);
    } else if (rt_utf8_valid(data.base, data.len)) {
        rt_json_append_string(b, data);
    } else {
        rt_buf_appendc(b, "\"");
        rt_base64_append(b, data);
        rt_buf_appendc(b, "\",\"encoding\":\"base64\"");
    }
}

typedef struct pub_wait {
    rt_sub_t *sub;     /* a connection's publish, or */
    h2o_req_t *req;    /* POST /pub (NULL once the client left) */
    struct pub_wait **anchor;
    rt_proxy_call_t *call;
    rt_proxy_pub_go_t go;
    void *arg;
} pub_wait_t;

static void on_pub_req_gone(void *p)
{
    pub_wait_t *w = *(pub_wait_t **)p;
    if (w == NULL)
        return;
    rt_proxy_cancel(w->call);
    free(w->arg);
    free(w);
}

static void on_pub_verdict(void *arg, rt_proxy_verdict_t *v)
{
    pub_wait_t *w = arg;
    if (w->anchor)
        *w->anchor = NULL;
    rt_str_t data = rt_str(v->data, v->data ? v->data_len : 0);
    w->go(w->sub, w->req, w->sub && w->sub->closed ? RT_ECLOSED : v->err, v->reason, v->data ? &data : NULL, w->arg);
    if (w->sub)
        rt_sub_put(w->sub);
    free(v->data);
    rt_ident_free(v->grant);
    free(w);
}

int rt_proxy_publish(rt_sub_t *sub, h2o_req_t *req, rt_str_t topic, rt_str_t data, rt_str_t ctype, rt_proxy_pub_go_t go,
                     void *arg)
{
    if (!rt_proxy_enabled(RT_PROXY_PUBLISH))
        return 0;
    rt_buf_t b = {0};
    if (sub) {
        describe_sub(&b, RT_PROXY_PUBLISH, sub, topic);
    } else {
        rt_proxy_describe(&b, RT_PROXY_PUBLISH, rt_str(NULL, 0), "http", req, NULL, NULL);
        rt_buf_appendc(&b, ",\"topic\":");
        rt_json_append_string(&b, topic);
    }
    append_data(&b, data, ctype);
    rt_buf_appendc(&b, "}");
    pub_wait_t *w = rt_calloc(1, sizeof(*w));
    w->sub = sub, w->req = req, w->go = go, w->arg = arg;
    if (sub)
        rt_sub_hold(sub);
    rt_proxy_verdict_t now;
    w->call = rt_proxy_ask(RT_PROXY_PUBLISH, rt_str(b.base, b.len), on_pub_verdict, w, &now);
    rt_buf_free(&b);
    if (w->call == NULL) {
        on_pub_verdict(w, &now);
    } else if (req) {
        w->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*w->anchor), on_pub_req_gone);
        *w->anchor = w;
    }
    return 1;
}

/* ------------------------------------------------------------------ refresh */

static void on_refresh_verdict(void *arg, rt_proxy_verdict_t *v)
{
    rt_sub_t *sub = arg;
    rt_ident_t *id = sub->ident;
    if (!sub->closed && id && id->refreshing) {
        id->refreshing = 0;
        if (v->err != RT_OK) {
            id->proxied = 0; /* ended at the expiry wheel's next walk, as an expired token */
            rt_log(RT_LOG_INFO, "proxy: refresh refused for %s: %s", id->user[0] ? id->user : "(anonymous)", v->reason);
        } else {
            id->exp_ms = v->expire_at_ms; /* 0 (no new expire_at): no expiry any more */
        }
        rt_sub_expiry_remove(sub);
        rt_sub_expiry_add(sub);
    }
    rt_ident_free(v->grant);
    free(v->data);
    rt_sub_put(sub);
}

int rt_proxy_refresh(rt_sub_t *sub)
{
    if (sub->ident->refreshing)
        return 1;
    sub->ident->refreshing = 1;
    rt_sub_hold(sub);
    rt_buf_t b = {0};
    rt_proxy_describe(&b, RT_PROXY_REFRESH, rt_sub_client(sub), sub->tp->name, sub->req, sub->sock, sub->ident);
    rt_buf_appendc(&b, "}");
    rt_proxy_verdict_t now;
    if (rt_proxy_ask(RT_PROXY_REFRESH, rt_str(b.base, b.len), on_refresh_verdict, sub, &now) == NULL)
        on_refresh_verdict(sub, &now);
    rt_buf_free(&b);
    return 1;
}
