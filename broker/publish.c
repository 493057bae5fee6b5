/*
 * POST /pub/{topic}: checks every input before the bus sees it (topic, event name,
 * size, idempotency key, permission), then publishes and answers 200 with the id only
 * once the bus has the message in its history. A refused publish changes nothing.
 */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>

#include "api.h"
#include "auth.h"
#include "bus.h"
#include "config.h"
#include "hub.h"
#include "http.h"
#include "namespace.h"
#include "ops.h"
#include "proxy.h"
#include "publish.h"
#include "ratelimit.h"
#include "text.h"
#include "webhook.h"

int rt_event_valid(rt_str_t ev)
{
    if (ev.len < 1 || ev.len > 64)
        return 0;
    for (size_t i = 0; i < ev.len; i++) {
        char c = ev.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int key_valid(rt_str_t k)
{
    if (k.len < 1 || k.len > 64)
        return 0;
    for (size_t i = 0; i < k.len; i++)
        if ((unsigned char)k.base[i] < 0x21 || (unsigned char)k.base[i] > 0x7e)
            return 0;
    return 1;
}

static rt_str_t peer(h2o_req_t *req, char *buf)
{
    rt_peer_ip(req, buf + 1, 63);
    buf[0] = '@'; /* never equal to a token subject */
    return rt_cstr(buf);
}

#define SCOPED_KEY_MAX (24 + 1 + 64)

/*
 * An Idempotency-Key is its publisher's own: the buses de-duplicate on a digest of who published (the token's
 * subject, or the client's address without one; the same on every node) and the key, so that another publisher
 * who guesses the key neither gets the first publish's id nor has its own message discarded, nor discards ours.
 */
static rt_str_t scope_key(const rt_ident_t *who, h2o_req_t *req, h2o_socket_t *sock, rt_str_t key, char *out)
{
    if (key.len == 0)
        return rt_str(NULL, 0);
    char publisher[sizeof(who->user) + 8], ip[64] = "?";
    unsigned char md[SHA256_DIGEST_LENGTH];
    int n; /* "sub:" and "ip:" keep a subject from ever reading as an address */
    if (who != NULL && who->user[0] != '\0') {
        n = snprintf(publisher, sizeof(publisher), "sub:%s", who->user);
    } else {
        if (sock != NULL)
            rt_sock_peer_ip(sock, ip, sizeof(ip));
        else if (req != NULL)
            rt_peer_ip(req, ip, sizeof(ip));
        n = snprintf(publisher, sizeof(publisher), "ip:%s", ip);
    }
    SHA256((const unsigned char *)publisher, (size_t)n < sizeof(publisher) ? (size_t)n : sizeof(publisher) - 1, md);
    for (int i = 0; i < 12; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[24] = '/';
    size_t len = key.len < SCOPED_KEY_MAX - 25 ? key.len : SCOPED_KEY_MAX - 25; /* checked before: at most 64 */
    memcpy(out + 25, key.base, len);
    return rt_str(out, 25 + len);
}

/* A publish waiting for the bus; the request may go away meanwhile (the anchor in its pool tells). */
typedef struct pub_ctx {
    h2o_req_t *req;
    struct pub_ctx **anchor;
    rt_str_t topic;
    char topicbuf[RT_TOPIC_MAX + 1];
    char idbuf[RT_ID_MAX + 1];
    size_t id_len;
} pub_ctx_t;

static void on_req_gone(void *p)
{
    pub_ctx_t *c = *(pub_ctx_t **)p;
    if (c)
        c->req = NULL;
}

static void respond_published(h2o_req_t *req, rt_str_t id, rt_str_t topic)
{
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"id\":");
    if (id.len)
        rt_json_append_string(&b, id);
    else
        rt_buf_appendc(&b, "null"); /* ephemeral */
    rt_buf_appendc(&b, ",\"topic\":");
    rt_json_append_string(&b, topic);
    rt_buf_appendc(&b, "}\n");
    rt_http_respond_buf(req, 200, "application/json", &b);
}

static void answer_deferred(void *arg)
{
    pub_ctx_t *c = arg;
    if (c->req) {
        *c->anchor = NULL;
        respond_published(c->req, rt_str(c->idbuf, c->id_len), c->topic);
    }
    free(c);
}

static void on_published(void *arg, int err, rt_str_t id)
{
    pub_ctx_t *c = arg;
    rt_metrics_published(err == RT_OK);
    if (c->req == NULL) { /* the client left before the bus answered */
        free(c);
        return;
    }
    rt_worker_t *w = rt_current_worker;
    if (err == RT_OK && w && id.len <= RT_ID_MAX) {
        /* backpressure: a publisher that waits for each answer goes at the pace subscribers are served, and its
         * fan-outs do not overlap (issue 21: overlapping ones doubled S2's p99) */
        memcpy(c->idbuf, id.base, id.len);
        c->id_len = id.len;
        if (rt_hub_pace(w, c->topic, answer_deferred, c))
            return;
    }
    *c->anchor = NULL;
    if (err == RT_EUNKNOWN)
        rt_http_error(c->req, err, "no acknowledgement from the bus in time: the message may or may not be stored; "
                                   "retry with the same Idempotency-Key to publish it exactly once");
    else if (err != RT_OK)
        rt_http_error(c->req, err, "the bus did not accept the message; nothing was published");
    else
        respond_published(c->req, id, c->topic);
    free(c);
}

int rt_publish_check(const rt_ident_t *who, rt_str_t topic, rt_str_t event, int has_event, rt_str_t idem, size_t len,
                     const char **why, int server)
{
    int wild = 0;
    if (rt_topic_check(topic, 1, &wild) != RT_OK || wild) {
        *why = wild ? "cannot publish to a wildcard pattern; name one topic"
                    : "a topic is 1-255 bytes of segments [A-Za-z0-9_-] joined by '.'";
        return RT_ETOPIC;
    }
    if (has_event && !rt_event_valid(event)) {
        *why = "an event name is 1-64 characters of [A-Za-z0-9_.-]";
        return RT_EEVENT;
    }
    if (idem.base && !key_valid(idem)) {
        *why = "Idempotency-Key must be 1-64 printable ASCII characters";
        return RT_EINVAL;
    }
    const rt_ns_t *ns = rt_ns_of(topic);
    if (ns && ns->publish_server && !server) {
        *why = "only the server publishes to this topic (topics: publish: server); use the server API";
        return RT_EFORBIDDEN;
    }
    int err = server ? RT_OK : rt_auth_allows(who, topic, 1);
    if (err != RT_OK) {
        *why = err == RT_EUNAUTHORIZED ? "a token allowing publish to this topic is required"
                                       : "the token does not allow publishing to this topic";
        return err;
    }
    if (len > rt_lim.max_message_bytes) {
        *why = "the message is larger than limits.max_message_bytes";
        return RT_ETOOLARGE;
    }
    return RT_OK;
}

/* The publish itself, once every check passed (and the backend allowed it). */
static void publish_http(h2o_req_t *req, rt_str_t topic, rt_str_t event, rt_str_t ctype, rt_str_t data, rt_str_t key)
{
    int err;
    rt_msg_t *msg = rt_msg_new(topic, event, ctype, data);
    rt_str_t eph = rt_req_header(req, "x-ephemeral");
    if (eph.len == 0)
        rt_req_query(req, "ephemeral", 0, &eph);
    if (rt_str_eqc(eph, "1") || rt_str_eqc(eph, "true")) {
        msg->flags |= RT_MSG_EPHEMERAL;
        rt_metrics_ephemeral();
        if ((err = rt_bus->ops->publish_ephemeral(rt_bus, msg)) != RT_OK)
            rt_http_error(req, err, "the bus is not available; nothing was sent");
        else
            respond_published(req, rt_str(NULL, 0), topic);
        return;
    }
    pub_ctx_t *c = rt_malloc(sizeof(*c));
    c->req = req;
    memcpy(c->topicbuf, topic.base, topic.len);
    c->topic = rt_str(c->topicbuf, topic.len);
    c->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*c->anchor), on_req_gone);
    *c->anchor = c;
    rt_webhook_bus_publish(msg, key, on_published, c);
}

/* POST /pub waiting for proxy.publish: slices into the request, which lives until it is answered. */
typedef struct http_pub {
    rt_str_t topic, event, ctype;
    char key[SCOPED_KEY_MAX];
    size_t key_len;
} http_pub_t;

static void on_http_pub_verdict(rt_sub_t *sub, h2o_req_t *req, int err, const char *why, const rt_str_t *data, void *arg)
{
    (void)sub;
    http_pub_t *hp = arg;
    rt_str_t payload = data ? *data : rt_str(req->entity.base, req->entity.len);
    if (err == RT_OK && payload.len > rt_lim.max_message_bytes) {
        err = RT_ETOOLARGE;
        why = "the backend's replacement data is larger than limits.max_message_bytes";
    }
    if (err != RT_OK)
        rt_http_error_status(req, rt_err_status(err), rt_strerror(err), why);
    else
        publish_http(req, hp->topic, hp->event, hp->ctype, payload, rt_str(hp->key_len ? hp->key : NULL, hp->key_len));
    free(hp);
}

void rt_publish_handle(h2o_req_t *req, rt_str_t path)
{
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        rt_http_error_status(req, 405, "method_not_allowed", "publish with POST /pub/{topic}");
        return;
    }
    rt_str_t topic = path.len > 5 ? rt_str(path.base + 5, path.len - 5) : rt_str("", 0);
    rt_str_t event = rt_req_header(req, "x-event");
    int has_event = event.base != NULL || rt_req_query(req, "event", 0, &event);
    rt_str_t key = rt_req_header(req, "idempotency-key");
    char ipbuf[64], scoped[SCOPED_KEY_MAX];
    const char *why = NULL;
    rt_ident_t *who = NULL;
    int server = rt_api_key_ok(req); /* the backend, with its API key: trusted like the server API */
    int err = server ? RT_OK : rt_auth_identify(req, &who, &why);
    if (err == RT_OK)
        err = rt_publish_check(who, topic, event, has_event, key, req->entity.len, &why, server);
    if (err == RT_EUNAUTHORIZED && who == NULL && rt_proxy_enabled(RT_PROXY_PUBLISH)) {
        /* no credentials at all (a session-cookie app): proxy.publish decides; the checks before rights passed */
        err = req->entity.len > rt_lim.max_message_bytes ? RT_ETOOLARGE : RT_OK;
    }
    if (err == RT_OK && !server && rt_lim.publish_per_subject > 0 &&
        !rt_rate_allow('s', who ? rt_cstr(who->user) : peer(req, ipbuf), rt_lim.publish_per_subject)) {
        err = RT_ERATELIMIT;
        why = "too many publishes per second (limits.publish_per_subject)";
        rt_metrics_rate_limited("publish");
    }
    if (err == RT_OK)
        key = scope_key(who, req, NULL, key, scoped);
    rt_ident_free(who);
    if (err != RT_OK) {
        char msg[160];
        if (err == RT_ETOOLARGE) {
            snprintf(msg, sizeof(msg), "the body is %zu bytes; the limit is %lld (limits.max_message_bytes)", req->entity.len,
                     (long long)rt_lim.max_message_bytes);
            why = msg;
        }
        rt_http_error(req, err, why);
        return;
    }
    rt_str_t ctype = rt_req_header(req, "content-type"), data = rt_str(req->entity.base, req->entity.len);
    http_pub_t *hp = rt_calloc(1, sizeof(*hp));
    hp->topic = topic, hp->event = event, hp->ctype = ctype;
    if (key.len)
        memcpy(hp->key, key.base, key.len);
    hp->key_len = key.len;
    if (!server && rt_proxy_publish(NULL, req, topic, data, ctype, on_http_pub_verdict, hp))
        return; /* the backend decides first (proxy.publish) */
    free(hp);
    publish_http(req, topic, event, ctype, data, key);
}

typedef struct sub_pub {
    rt_sub_t *sub;
    void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg);
    void *arg;
} sub_pub_t;

static void on_sub_published(void *arg, int err, rt_str_t id)
{
    sub_pub_t *p = arg;
    rt_metrics_published(err == RT_OK);
    if (!p->sub->closed)
        p->done(p->sub, err, id, p->arg);
    else
        free(p->arg); /* the transport's context for an ack nobody can receive */
    rt_sub_put(p->sub);
    free(p);
}

/* A connection's publish once every check passed (and the backend allowed it). */
static int publish_sub_now(rt_sub_t *sub, const rt_pub_t *pub, const char **why,
                           void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg), void *arg)
{
    int err;
    rt_msg_t *msg = rt_msg_new(pub->topic, pub->event, pub->content_type, pub->data);
    if (pub->ephemeral) {
        msg->flags |= RT_MSG_EPHEMERAL;
        rt_metrics_ephemeral();
        if ((err = rt_bus->ops->publish_ephemeral(rt_bus, msg)) != RT_OK) {
            *why = "the bus is not available; nothing was sent";
            return err;
        }
        done(sub, RT_OK, rt_str(NULL, 0), arg);
        return RT_OK;
    }
    char scoped[SCOPED_KEY_MAX];
    rt_str_t key = scope_key(sub->ident, sub->req, sub->sock, pub->idempotency_key, scoped);
    sub_pub_t *p = rt_malloc(sizeof(*p));
    p->sub = sub, p->done = done, p->arg = arg;
    rt_sub_hold(sub);
    rt_webhook_bus_publish(msg, key, on_sub_published, p);
    return RT_OK;
}

/* A connection's publish waiting for proxy.publish: copies of its fields, in one allocation. */
typedef struct conn_pub {
    rt_pub_t pub;
    void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg);
    void *arg;
    char bytes[];
} conn_pub_t;

static rt_str_t keep(char **p, rt_str_t s)
{
    if (s.len)
        memcpy(*p, s.base, s.len);
    rt_str_t out = rt_str(*p, s.len);
    *p += s.len;
    return out;
}

static conn_pub_t *conn_pub_copy(const rt_pub_t *pub, void (*done)(rt_sub_t *, int, rt_str_t, void *), void *arg)
{
    size_t n = pub->topic.len + pub->event.len + pub->content_type.len + pub->data.len + pub->idempotency_key.len;
    conn_pub_t *cp = rt_malloc(sizeof(*cp) + n + 1);
    char *p = cp->bytes;
    cp->pub.topic = keep(&p, pub->topic);
    cp->pub.event = keep(&p, pub->event);
    cp->pub.content_type = keep(&p, pub->content_type);
    cp->pub.data = keep(&p, pub->data);
    cp->pub.idempotency_key = keep(&p, pub->idempotency_key);
    cp->pub.ephemeral = pub->ephemeral;
    cp->done = done, cp->arg = arg;
    return cp;
}

static void on_conn_pub_verdict(rt_sub_t *sub, h2o_req_t *req, int err, const char *why, const rt_str_t *data, void *arg)
{
    (void)req;
    conn_pub_t *cp = arg;
    if (data)
        cp->pub.data = *data;
    if (err == RT_OK && cp->pub.data.len > rt_lim.max_message_bytes)
        err = RT_ETOOLARGE; /* the backend's replacement */
    if (err == RT_ECLOSED)
        free(cp->arg); /* the transport's context for an ack nobody can receive */
    else if (err != RT_OK || (err = publish_sub_now(sub, &cp->pub, &why, cp->done, cp->arg)) != RT_OK)
        cp->done(sub, err, rt_str(NULL, 0), cp->arg);
    free(cp);
}

int rt_publish_from_sub(rt_sub_t *sub, const rt_pub_t *pub, const char **why,
                        void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg), void *arg)
{
    int err = sub->auth_err ? sub->auth_err
                            : rt_publish_check(sub->ident, pub->topic, pub->event, pub->event.len > 0,
                                               pub->idempotency_key.len ? pub->idempotency_key : rt_str(NULL, 0),
                                               pub->data.len, why, 0);
    if (err == RT_EUNAUTHORIZED && sub->auth_err)
        *why = "the connection's token was refused";
    if (err != RT_OK)
        return err;
    if (!rt_bucket_take(&sub->pub_bucket, rt_lim.publish_per_connection, rt_now_ms()) ||
        (sub->ident && !rt_rate_allow('s', rt_cstr(sub->ident->user), rt_lim.publish_per_subject))) {
        rt_metrics_rate_limited("publish");
        *why = "too many publishes per second (limits.publish_per_connection / publish_per_subject)";
        return RT_ERATELIMIT;
    }
    if (rt_proxy_enabled(RT_PROXY_PUBLISH)) { /* the backend decides first: keep the publish until it answers */
        conn_pub_t *cp = conn_pub_copy(pub, done, arg);
        rt_proxy_publish(sub, NULL, pub->topic, pub->data, pub->content_type, on_conn_pub_verdict, cp);
        return RT_OK;
    }
    return publish_sub_now(sub, pub, why, done, arg);
}
