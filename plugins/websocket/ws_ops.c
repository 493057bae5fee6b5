/*
 * The rt.v1 ops (sub, unsub, pub, ping, auth, presence) of API.md: one JSON object per text frame in,
 * acks, errors and gap notices out. Values are bounded before use: topics by the topic
 * grammar, refs to 128 bytes, data by the message size limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws_ops.h"

extern const rt_services_t *ws_svc;
#define svc ws_svc

#define MAX_FIELDS 16
#define MAX_REF 128

typedef struct op {
    rt_str_t op, topic, since, event, ref, data, token, key;
    int ephemeral, presence;
    char data_type;
} op_t;

static int key_is(rt_str_t k, const char *name) { return k.len == strlen(name) && memcmp(k.base, name, k.len) == 0; }

/* Appends a JSON string for s (s is plain ASCII or already-valid UTF-8 without control characters). */
static size_t put(char *buf, size_t cap, size_t off, const char *s, size_t n)
{
    if (off + n <= cap)
        memcpy(buf + off, s, n);
    return off + n;
}

static void reply(rt_sub_t *sub, const char *type, rt_str_t ref, const char *extra)
{
    char buf[512];
    size_t o = 0;
    o = put(buf, sizeof(buf), o, "{\"type\":\"", 9);
    o = put(buf, sizeof(buf), o, type, strlen(type));
    o = put(buf, sizeof(buf), o, "\"", 1);
    if (ref.len) {
        o = put(buf, sizeof(buf), o, ",\"ref\":", 7);
        o = put(buf, sizeof(buf), o, ref.base, ref.len);
    }
    if (extra)
        o = put(buf, sizeof(buf), o, extra, strlen(extra));
    o = put(buf, sizeof(buf), o, "}", 1);
    if (o <= sizeof(buf))
        ws_send_text(sub, buf, o);
}

static void error(rt_sub_t *sub, rt_str_t ref, const char *code, const char *message)
{
    char extra[320];
    snprintf(extra, sizeof(extra), ",\"code\":\"%s\",\"message\":\"%s\"", code, message);
    reply(sub, "error", ref, extra);
}

/* A string field decoded into buf (NUL-terminated); 0 when absent or not a string that fits. */
static int text(rt_str_t raw, char *buf, size_t cap, rt_str_t *out)
{
    int n = svc->json_unescape(raw, buf, cap - 1);
    if (n < 0)
        return 0;
    buf[n] = '\0';
    *out = (rt_str_t){buf, (size_t)n};
    return 1;
}

/* A sub op's values, kept while the backend decides (subscribe_ask). */
typedef struct sub_req {
    int presence;
    size_t topic_len, since_len, ref_len;
    char topic[300], since[80], ref[MAX_REF + 2];
} sub_req_t;

static void sub_now(rt_sub_t *sub, const sub_req_t *r)
{
    ws_conn_t *c = svc->sub_data(sub);
    rt_str_t topic = {r->topic, r->topic_len}, ref = {r->ref, r->ref_len};
    rt_sub_opts_t opts = {&topic, 1, (rt_str_t){r->since, r->since_len}, 0};
    c->gap_topic = topic;
    int err = svc->subscribe(sub, &opts);
    c->gap_topic = (rt_str_t){NULL, 0};
    if (err != RT_OK) {
        error(sub, ref, svc->strerror(err),
              err == RT_ETOPIC      ? "a topic is segments of [A-Za-z0-9_-] joined by '.', with '*' or a last '>'"
              : err == RT_EID       ? "since must be an id EPOCH:SEQ given by this broker"
              : err == RT_ETOOMANY  ? "too many subscriptions on this connection (limits.max_topics)"
              : err == RT_EFORBIDDEN ? "the token does not allow subscribing to this topic"
              : err == RT_EUNAUTHORIZED ? "a token allowing subscribe to this topic is required"
                                        : "the subscription failed");
        return;
    }
    if (r->presence)
        svc->presence_join(sub, topic, (rt_str_t){NULL, 0}, 0);
    reply(sub, "ok", ref, NULL);
}

/* The backend's verdict on a sub op (proxy.subscribe). */
static void on_sub_allowed(rt_sub_t *sub, int err, const char *why, void *arg)
{
    sub_req_t *r = arg;
    if (err == RT_OK) {
        sub_now(sub, r);
    } else {
        char msg[200]; /* a JSON string body: the backend's reason without quotes or control characters */
        size_t n = 0;
        for (; why[n] && n < sizeof(msg) - 1; n++)
            msg[n] = why[n] == '"' || why[n] == '\\' || (unsigned char)why[n] < 0x20 ? '\'' : why[n];
        msg[n] = '\0';
        error(sub, (rt_str_t){r->ref, r->ref_len}, svc->strerror(err), msg);
    }
    free(r);
}

static void do_sub(rt_sub_t *sub, const op_t *o)
{
    sub_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        abort();
    rt_str_t topic, since = {NULL, 0};
    if (o->ref.len) /* no ref: base may be NULL */
        memcpy(r->ref, o->ref.base, o->ref.len); /* refs are bounded to MAX_REF before ops run */
    r->ref_len = o->ref.len;
    if (!o->topic.len || !text(o->topic, r->topic, sizeof(r->topic), &topic)) {
        error(sub, o->ref, "invalid_topic", "sub needs a \\\"topic\\\" string");
        free(r);
        return;
    }
    if (o->since.len && !text(o->since, r->since, sizeof(r->since), &since)) {
        error(sub, o->ref, "invalid_id", "since must be an id string EPOCH:SEQ");
        free(r);
        return;
    }
    if (o->presence && (memchr(topic.base, '*', topic.len) || memchr(topic.base, '>', topic.len))) {
        error(sub, o->ref, "invalid_topic", "presence needs an exact topic (no wildcards)");
        free(r);
        return;
    }
    r->topic_len = topic.len, r->since_len = since.len, r->presence = o->presence;
    if (svc->subscribe_ask &&
        svc->subscribe_ask(sub, topic, on_sub_allowed, r) == 1)
        return;
    sub_now(sub, r);
    free(r);
}

/* {"op":"presence","topic":T}: {"type":"presence","ref",...the snapshot's fields} */
static void do_presence(rt_sub_t *sub, const op_t *o)
{
    char tbuf[300];
    rt_str_t topic, json;
    if (!o->topic.len || !text(o->topic, tbuf, sizeof(tbuf), &topic)) {
        error(sub, o->ref, "invalid_topic", "presence needs a \\\"topic\\\" string");
        return;
    }
    int err = svc->presence_snapshot(sub, topic, &json);
    if (err != RT_OK) {
        error(sub, o->ref, svc->strerror(err),
              err == RT_ETOPIC       ? "presence needs an exact topic (no wildcards)"
              : err == RT_EFORBIDDEN ? "the token does not allow subscribing to this topic"
                                     : "a token allowing subscribe to this topic is required");
        return;
    }
    char *buf = malloc(json.len + o->ref.len + 32);
    if (buf == NULL)
        abort();
    size_t n = 0;
    memcpy(buf, "{\"type\":\"presence\",", 19), n = 19;
    if (o->ref.len) {
        memcpy(buf + n, "\"ref\":", 6), n += 6;
        memcpy(buf + n, o->ref.base, o->ref.len), n += o->ref.len;
        buf[n++] = ',';
    }
    memcpy(buf + n, json.base + 1, json.len - 1), n += json.len - 1;
    ws_send_text(sub, buf, n);
    free(buf);
}

static void do_unsub(rt_sub_t *sub, const op_t *o)
{
    char tbuf[300];
    rt_str_t topic;
    if (!o->topic.len || !text(o->topic, tbuf, sizeof(tbuf), &topic)) {
        error(sub, o->ref, "invalid_topic", "unsub needs a \\\"topic\\\" string");
        return;
    }
    if (svc->unsubscribe(sub, topic) != RT_OK) {
        error(sub, o->ref, "invalid_parameter", "not subscribed to this topic");
        return;
    }
    reply(sub, "ok", o->ref, NULL);
}

typedef struct pub_ref {
    size_t len;
    char ref[MAX_REF];
} pub_ref_t;

static void on_published(rt_sub_t *sub, int err, rt_str_t id, void *arg)
{
    pub_ref_t *r = arg;
    rt_str_t ref = {r->ref, r->len};
    if (err != RT_OK) {
        error(sub, ref, svc->strerror(err), "nothing was published (refused, or the bus did not accept it)");
    } else {
        char extra[96];
        if (id.len)
            snprintf(extra, sizeof(extra), ",\"id\":\"%.*s\"", (int)(id.len > 64 ? 64 : id.len), id.base);
        else
            snprintf(extra, sizeof(extra), ",\"id\":null"); /* ephemeral */
        reply(sub, "ok", ref, extra);
    }
    free(r);
}

static void do_pub(rt_sub_t *sub, const op_t *o)
{
    char tbuf[300], ebuf[80], kbuf[80];
    rt_str_t topic, event = {NULL, 0}, key = {NULL, 0};
    if (!o->topic.len || !text(o->topic, tbuf, sizeof(tbuf), &topic)) {
        error(sub, o->ref, "invalid_topic", "pub needs a \\\"topic\\\" string");
        return;
    }
    if (o->key.len && !text(o->key, kbuf, sizeof(kbuf), &key)) {
        error(sub, o->ref, "invalid_parameter", "idempotency_key must be 1-64 printable ASCII characters");
        return;
    }
    if (o->event.len && !text(o->event, ebuf, sizeof(ebuf), &event)) {
        error(sub, o->ref, "invalid_event", "an event name is 1-64 characters of [A-Za-z0-9_.-]");
        return;
    }
    if (!o->data.len) {
        error(sub, o->ref, "invalid_parameter", "pub needs \\\"data\\\"");
        return;
    }
    rt_pub_t p = {topic, event, {NULL, 0}, o->data, key, o->ephemeral};
    char *decoded = NULL;
    if (o->data_type == 's') { /* a JSON string is published as that text */
        decoded = malloc(o->data.len + 1);
        if (decoded == NULL)
            abort();
        int n = svc->json_unescape(o->data, decoded, o->data.len);
        p.data = (rt_str_t){decoded, n < 0 ? 0 : (size_t)n};
    } else {
        p.content_type = (rt_str_t){"application/json", 16};
    }
    pub_ref_t *r = malloc(sizeof(*r));
    if (r == NULL)
        abort();
    r->len = o->ref.len;
    if (o->ref.len)
        memcpy(r->ref, o->ref.base, o->ref.len);
    const char *why = NULL;
    int err = svc->publish(sub, &p, &why, on_published, r);
    free(decoded);
    ws_conn_t *c = svc->sub_data(sub);
    c->limited = err == RT_ERATELIMIT ? c->limited + 1 : 0;
    if (err != RT_OK) {
        error(sub, o->ref, svc->strerror(err), why ? why : "refused");
        free(r);
    }
    if (c->limited >= 5)
        ws_close(sub, 4029, "rate limited");
}

static void do_auth(rt_sub_t *sub, const op_t *o)
{
    char *token = malloc(o->token.len + 1);
    if (token == NULL)
        abort();
    rt_str_t t = {NULL, 0};
    const char *why = "auth needs a \\\"token\\\" string";
    int err = RT_EUNAUTHORIZED;
    if (o->token.len && text(o->token, token, o->token.len + 1, &t))
        err = svc->authenticate(sub, t, &why);
    free(token);
    if (err != RT_OK) {
        error(sub, o->ref, "unauthorized", "the token was refused");
        ws_close(sub, 4001, why);
        return;
    }
    svc->sub_timer(sub, 1, 0, NULL); /* authenticated in time */
    reply(sub, "ok", o->ref, NULL);
}

void ws_ops_dropped(rt_sub_t *sub, rt_str_t pattern)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "{\"type\":\"error\",\"code\":\"forbidden\",\"topic\":\"%.*s\",\"message\":\"the new token does not "
                     "allow this subscription; it was dropped\"}",
                     (int)pattern.len, pattern.base);
    if (n > 0 && (size_t)n < sizeof(buf))
        ws_send_text(sub, buf, (size_t)n);
}

void ws_ops_handle(rt_sub_t *sub, ws_conn_t *c, const char *json, size_t len)
{
    (void)c; /* sub_now finds it again: a sub op may complete after the backend's answer */
    rt_json_field_t f[MAX_FIELDS];
    int n = svc->json_object((rt_str_t){json, len}, f, MAX_FIELDS);
    rt_str_t noref = {NULL, 0};
    if (n < 0) {
        error(sub, noref, "invalid_parameter", "each frame must be one JSON object (an op)");
        return;
    }
    op_t o;
    memset(&o, 0, sizeof(o));
    for (int i = 0; i < n; i++) {
        rt_str_t k = f[i].key;
        if (key_is(k, "ref")) {
            if (f[i].value.len > MAX_REF || f[i].type == 'o' || f[i].type == 'a') {
                error(sub, noref, "invalid_parameter", "ref must be a string or number of at most 128 bytes");
                return;
            }
            o.ref = f[i].value;
        } else if (key_is(k, "op") && f[i].type == 's') {
            o.op = f[i].value;
        } else if (key_is(k, "topic")) {
            o.topic = f[i].type == 's' ? f[i].value : (rt_str_t){"", 0};
        } else if (key_is(k, "since") && f[i].type == 's') {
            o.since = f[i].value;
        } else if (key_is(k, "ephemeral")) {
            o.ephemeral = f[i].type == 't';
        } else if (key_is(k, "presence")) {
            o.presence = f[i].type == 't';
        } else if (key_is(k, "idempotency_key") && f[i].type == 's') {
            o.key = f[i].value;
        } else if (key_is(k, "token") && f[i].type == 's') {
            o.token = f[i].value;
        } else if (key_is(k, "event") && f[i].type == 's') {
            o.event = f[i].value;
        } else if (key_is(k, "data")) {
            o.data = f[i].value;
            o.data_type = f[i].type;
        }
    }
    if (key_is(o.op, "\"sub\""))
        do_sub(sub, &o);
    else if (key_is(o.op, "\"unsub\""))
        do_unsub(sub, &o);
    else if (key_is(o.op, "\"pub\""))
        do_pub(sub, &o);
    else if (key_is(o.op, "\"ping\""))
        reply(sub, "ok", o.ref, NULL);
    else if (key_is(o.op, "\"auth\""))
        do_auth(sub, &o);
    else if (key_is(o.op, "\"presence\""))
        do_presence(sub, &o);
    else
        error(sub, o.ref, "invalid_parameter", "unknown op; use sub, unsub, pub, ping, auth or presence");
}

void ws_ops_gap(rt_sub_t *sub, ws_conn_t *c, rt_str_t from)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "{\"type\":\"gap\",\"topic\":\"%.*s\",\"from\":\"%.*s\"}", (int)c->gap_topic.len,
                     c->gap_topic.base, (int)(from.len > 64 ? 64 : from.len), from.base);
    if (n > 0 && (size_t)n < sizeof(buf))
        ws_send_text(sub, buf, (size_t)n);
}
