/*
 * The server API under /api/: JSON in and out, for an application's backend (publish to many topics, disconnect,
 * server-side subscribe and unsubscribe, what is live, history removal, the cluster's nodes). Authenticated by
 * `Authorization: apikey <key>` (api.keys / RTB_API_KEYS; none configured: every /api/ path is 404). Owns the
 * parsing and checking of every input and the answers; what is done on subscribers is api_local.c's, across
 * nodes api_cluster.c's. Never blocks a worker: the bus and the other nodes answer through callbacks.
 */
#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "api.h"
#include "config.h"
#include "http.h"
#include "ops.h"
#include "presence.h"
#include "publish.h"
#include "text.h"
#include "webhook.h"

enum { M_PUBLISH, M_DISCONNECT, M_SUBSCRIBE, M_UNSUBSCRIBE, M_TOPICS, M_TOPIC, M_HISTORY, M_INFO, M_OTHER, NMETHODS };
static const char *const method_names[NMETHODS] = {"publish", "disconnect", "subscribe", "unsubscribe", "topics",
                                                   "topic",   "history",    "info",      "other"};
enum { RES_OK, RES_INVALID, RES_UNAUTHORIZED, RES_NOT_FOUND, RES_FAILED, NRES };
static const char *const result_names[NRES] = {"ok", "invalid", "unauthorized", "not_found", "failed"};
static atomic_ulong calls[NMETHODS][NRES];

static char **keys;
static size_t nkeys, max_topics_per_publish, max_body;

#define MAX_FIELDS 16

int rt_api_init(char *err, size_t errlen)
{
    const rt_cfg_value_t *v = rt_cfg("api.keys");
    keys = rt_calloc(v->nlist + 1, sizeof(*keys));
    for (size_t i = 0; i < v->nlist; i++) {
        if (v->list[i][0] == '\0')
            continue;
        if (strlen(v->list[i]) < 16) {
            snprintf(err, errlen, "config: api.keys: key %zu is %zu characters; an API key must have at least 16", i + 1,
                     strlen(v->list[i]));
            return -1;
        }
        keys[nkeys++] = v->list[i];
    }
    max_topics_per_publish = (size_t)rt_cfg_int("api.max_topics_per_publish");
    max_body = (size_t)rt_cfg_int("api.max_body_bytes");
    return 0;
}

int rt_api_enabled(void) { return nkeys > 0; }

int rt_api_key_ok(h2o_req_t *req)
{
    rt_str_t h = rt_req_header(req, "authorization");
    if (h.len < 8 || strncasecmp(h.base, "apikey ", 7) != 0)
        return 0;
    rt_str_t k = rt_str(h.base + 7, h.len - 7);
    int ok = 0;
    for (size_t i = 0; i < nkeys; i++) /* every key compared in constant time */
        ok |= strlen(keys[i]) == k.len && CRYPTO_memcmp(keys[i], k.base, k.len) == 0;
    return ok;
}

void rt_api_metrics(rt_buf_t *out)
{
    rt_buf_appendc(out, "# HELP rtbroker_api_calls_total Server API calls by method and result.\n"
                        "# TYPE rtbroker_api_calls_total counter\n");
    for (int m = 0; m < NMETHODS; m++)
        for (int r = 0; r < NRES; r++) {
            unsigned long n = atomic_load_explicit(&calls[m][r], memory_order_relaxed);
            if (n || r == RES_OK)
                rt_buf_printf(out, "rtbroker_api_calls_total{method=\"%s\",result=\"%s\"} %lu\n", method_names[m],
                              result_names[r], n);
        }
}

/* ---------- answers ---------- */

static void count(int method, int status)
{
    int r = status < 300 ? RES_OK : status == 401 ? RES_UNAUTHORIZED : status == 404 ? RES_NOT_FOUND : status < 500 ? RES_INVALID : RES_FAILED;
    atomic_fetch_add_explicit(&calls[method][r], 1, memory_order_relaxed);
}

static void reply(h2o_req_t *req, int method, int status, rt_buf_t *b)
{
    count(method, status);
    if (status >= 400)
        rt_metrics_http_error(status);
    rt_buf_appendc(b, "\n");
    rt_http_respond_buf(req, status, "application/json", b);
}

/* {"error":code,"field":field,"message":message} */
static void fail(h2o_req_t *req, int method, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void fail(h2o_req_t *req, int method, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"error\":");
    rt_json_append_string(&b, rt_cstr(code));
    if (field) {
        rt_buf_appendc(&b, ",\"field\":");
        rt_json_append_string(&b, rt_cstr(field));
    }
    rt_buf_appendc(&b, ",\"message\":");
    rt_json_append_string(&b, rt_cstr(msg));
    rt_buf_appendc(&b, "}");
    rt_log(RT_LOG_INFO, "api %s -> %d %s: %s", method_names[method], status, code, msg);
    if (status == 405)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, method == M_TOPICS || method == M_TOPIC ||
                       method == M_INFO ? "GET" : method == M_HISTORY ? "DELETE" : "POST", method == M_HISTORY ? 6 : method == M_TOPICS || method == M_TOPIC || method == M_INFO ? 3 : 4);
    reply(req, method, status, &b);
}

/* ---------- input ---------- */

typedef struct field {
    const char *name;
    const char *types;   /* the JSON types it may have (rt_json_field_t.type letters) */
    const char *type_name;
    rt_json_field_t f;
    int present;
} field_t;

/* Splits the body into the fields of spec; answers 400/413 and returns -1 on anything else. */
static int parse_body(h2o_req_t *req, int method, field_t *spec, size_t nspec)
{
    rt_str_t body = rt_str(req->entity.base, req->entity.len);
    if (body.len > max_body) {
        fail(req, method, 413, "too_large", "body", "the body is %zu bytes; the limit is %zu (api.max_body_bytes)", body.len,
             max_body);
        return -1;
    }
    rt_json_field_t f[MAX_FIELDS];
    int n = rt_json_object(body, f, MAX_FIELDS);
    if (n < 0) {
        if (rt_json_valid(body.base, body.len) && body.len && body.base[strspn(body.base, " \t\r\n")] == '{')
            fail(req, method, 400, "invalid_parameter", "body", "too many fields (at most %d)", MAX_FIELDS);
        else
            fail(req, method, 400, "invalid_json", "body", "the body must be one JSON object");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        size_t k = 0;
        while (k < nspec && !rt_str_eqc(f[i].key, spec[k].name))
            k++;
        char name[72];
        snprintf(name, sizeof(name), "%.*s", (int)(f[i].key.len > 64 ? 64 : f[i].key.len), f[i].key.base);
        if (k == nspec) {
            fail(req, method, 400, "invalid_parameter", name, "unknown field \"%s\"", name);
            return -1;
        }
        if (spec[k].present) {
            fail(req, method, 400, "invalid_parameter", name, "field \"%s\" is given twice", name);
            return -1;
        }
        if (strchr(spec[k].types, f[i].type) == NULL) {
            fail(req, method, 400, "invalid_parameter", name, "field \"%s\" must be %s", name, spec[k].type_name);
            return -1;
        }
        spec[k].present = 1;
        spec[k].f = f[i];
    }
    return 0;
}

/* A string field decoded into buf (cap bytes with the NUL); -1 (answered) when it does not fit. */
static int string_field(h2o_req_t *req, int method, const field_t *fl, char *buf, size_t cap, size_t maxlen)
{
    int n = rt_json_unescape(fl->f.value, buf, cap - 1);
    if (n < 0 || (size_t)n > maxlen) {
        fail(req, method, 400, "invalid_parameter", fl->name, "field \"%s\" is longer than %zu bytes", fl->name, maxlen);
        return -1;
    }
    buf[n] = '\0';
    return n;
}

/* An exact topic (no wildcard) into buf; -1 when answered. */
static int exact_topic(h2o_req_t *req, int method, const char *field, rt_str_t t, int allow_wild)
{
    int wild = 0;
    if (rt_topic_check(t, 1, &wild) != RT_OK || (wild && !allow_wild)) {
        fail(req, method, 400, "invalid_topic", field,
             wild ? "%s: a wildcard pattern where one topic is needed" : "%s: a topic is 1-255 bytes of segments [A-Za-z0-9_-] joined by '.'",
             field);
        return -1;
    }
    return 0;
}

/* The query may hold only these parameters. */
static int check_query(h2o_req_t *req, int method, const char *const *allowed)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        rt_str_t name = rt_str(p, (size_t)((eq ? eq : stop) - p));
        int ok = name.len == 0;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = rt_str_eqc(name, allowed[i]);
        if (!ok) {
            char n[72];
            snprintf(n, sizeof(n), "%.*s", (int)(name.len > 64 ? 64 : name.len), name.base);
            fail(req, method, 400, "invalid_parameter", n, "unknown query parameter \"%s\"", n);
            return -1;
        }
        p = stop + 1;
    }
    return 0;
}

/* ---------- a call waiting for the bus or the cluster ---------- */

typedef struct call {
    h2o_req_t *req;
    struct call **anchor;
    int method, refs;
    rt_api_cmd_t cmd;
    size_t limit;
    /* publish */
    size_t ntopics, failed;
    char (*topics)[RT_TOPIC_MAX + 1];
    char (*ids)[RT_ID_MAX + 1];
    int *errs;
    /* GET /api/topics/T: the answer so far, while the bus looks up the retained messages (NATS: JetStream) */
    rt_buf_t head, tail;
    rt_replay_t r;
} call_t;

static void on_req_gone(void *p)
{
    call_t *c = *(call_t **)p;
    if (c)
        c->req = NULL;
}

static call_t *call_new(h2o_req_t *req, int method)
{
    call_t *c = rt_calloc(1, sizeof(*c));
    c->req = req;
    c->method = method;
    c->refs = 1;
    c->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*c->anchor), on_req_gone);
    *c->anchor = c;
    return c;
}

/* The request, if it is still there (then detached from c). */
static h2o_req_t *call_take(call_t *c)
{
    h2o_req_t *req = c->req;
    if (req != NULL)
        *c->anchor = NULL;
    c->req = NULL;
    return req;
}

static void call_put(call_t *c)
{
    if (--c->refs > 0)
        return;
    free(c->topics);
    free(c->ids);
    free(c->errs);
    rt_buf_free(&c->head);
    rt_buf_free(&c->tail);
    free(c);
}

/* ---------- POST /api/publish ---------- */

static void publish_answer(call_t *c);

/* The bus's answers and the loop that publishes each hold a reference; the last one answers. */
static void publish_put(call_t *c)
{
    if (c->refs == 1)
        publish_answer(c);
    call_put(c);
}

static void publish_answer(call_t *c)
{
    h2o_req_t *req = call_take(c);
    if (req == NULL)
        return;
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"results\":[");
    for (size_t i = 0; i < c->ntopics; i++) {
        rt_buf_appendc(&b, i ? ",{\"topic\":" : "{\"topic\":");
        rt_json_append_string(&b, rt_cstr(c->topics[i]));
        if (c->errs[i] != RT_OK) {
            rt_buf_printf(&b, ",\"error\":\"%s\",\"message\":\"%s\"}", rt_strerror(c->errs[i]),
                          c->errs[i] == RT_EUNKNOWN ? "no acknowledgement from the bus in time; retry with the same idempotency_key"
                                                    : "the bus did not accept the message");
            continue;
        }
        rt_buf_appendc(&b, ",\"id\":");
        if (c->ids[i][0])
            rt_json_append_string(&b, rt_cstr(c->ids[i]));
        else
            rt_buf_appendc(&b, "null");
        rt_buf_appendc(&b, "}");
    }
    rt_buf_printf(&b, "],\"failed\":%zu}", c->failed);
    reply(req, M_PUBLISH, 200, &b);
}

typedef struct pub_slot {
    call_t *c;
    size_t i;
} pub_slot_t;

static void on_published(void *arg, int err, rt_str_t id)
{
    pub_slot_t *s = arg;
    call_t *c = s->c;
    rt_metrics_published(err == RT_OK);
    c->errs[s->i] = err;
    c->failed += err != RT_OK;
    if (err == RT_OK)
        snprintf(c->ids[s->i], RT_ID_MAX + 1, "%.*s", (int)(id.len > RT_ID_MAX ? RT_ID_MAX : id.len), id.base);
    free(s);
    publish_put(c);
}

static void api_publish(h2o_req_t *req)
{
    field_t spec[] = {{.name = "topics", .types = "a", .type_name = "an array of topics"},
                      {.name = "data", .types = "snoatfz", .type_name = "a JSON value"},
                      {.name = "event", .types = "s", .type_name = "a string"},
                      {.name = "ephemeral", .types = "tf", .type_name = "true or false"},
                      {.name = "idempotency_key", .types = "s", .type_name = "a string"}};
    if (parse_body(req, M_PUBLISH, spec, 5) != 0)
        return;
    if (!spec[0].present || !spec[1].present) {
        fail(req, M_PUBLISH, 400, "invalid_parameter", spec[0].present ? "data" : "topics", "field \"%s\" is required",
             spec[0].present ? "data" : "topics");
        return;
    }
    size_t cap = max_topics_per_publish + 1;
    rt_str_t *items = rt_malloc(cap * sizeof(*items));
    int n = rt_json_array(spec[0].f.value, items, cap);
    if (n < 0 || (size_t)n > max_topics_per_publish || n == 0) {
        free(items);
        fail(req, M_PUBLISH, 400, n == 0 ? "invalid_topic" : "too_many_topics", "topics",
             n == 0 ? "at least one topic is needed" : "at most %zu topics in one publish (api.max_topics_per_publish)",
             max_topics_per_publish);
        return;
    }
    call_t *c = call_new(req, M_PUBLISH);
    c->ntopics = (size_t)n;
    c->topics = rt_calloc((size_t)n, sizeof(*c->topics));
    c->ids = rt_calloc((size_t)n, sizeof(*c->ids));
    c->errs = rt_calloc((size_t)n, sizeof(*c->errs));
    char field[32], ev[80], key[80], *payload = NULL;
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        snprintf(field, sizeof(field), "topics[%d]", i);
        int len = items[i].len && items[i].base[0] == '"' ? rt_json_unescape(items[i], c->topics[i], RT_TOPIC_MAX) : -1;
        if (len < 0) {
            fail(req, M_PUBLISH, 400, "invalid_topic", field, "%s: a topic is a string of 1-255 bytes", field);
            ok = 0;
            break;
        }
        c->topics[i][len] = '\0';
        ok = exact_topic(req, M_PUBLISH, field, rt_str(c->topics[i], (size_t)len), 0) == 0;
    }
    free(items);
    rt_str_t event = {NULL, 0}, idem = {NULL, 0}, data = spec[1].f.value, ctype = RT_STRLIT("application/json");
    int elen = ok && spec[2].present ? string_field(req, M_PUBLISH, &spec[2], ev, sizeof(ev), 64) : 0;
    if (elen < 0 || (ok && spec[2].present && !rt_event_valid(rt_str(ev, (size_t)elen)))) {
        if (elen >= 0)
            fail(req, M_PUBLISH, 400, "invalid_event", "event", "an event name is 1-64 characters of [A-Za-z0-9_.-]");
        ok = 0;
    }
    event = rt_str(ev, elen > 0 ? (size_t)elen : 0);
    int klen = ok && spec[4].present ? string_field(req, M_PUBLISH, &spec[4], key + 4, sizeof(key) - 4, 64) : 0;
    if (klen < 0)
        ok = 0;
    else if (ok && spec[4].present) {
        for (int i = 0; i < klen; i++)
            if ((unsigned char)key[4 + i] < 0x21 || (unsigned char)key[4 + i] > 0x7e)
                klen = 0;
        if (klen == 0) {
            fail(req, M_PUBLISH, 400, "invalid_parameter", "idempotency_key", "idempotency_key must be 1-64 printable ASCII characters");
            ok = 0;
        }
        memcpy(key, "api/", 4); /* the API's keys never meet a client's (those are a hex digest and '/') */
        idem = rt_str(key, (size_t)klen + 4);
    }
    if (ok && spec[1].f.type == 's') { /* a JSON string is published as its text */
        payload = rt_malloc(data.len + 1);
        int dl = rt_json_unescape(data, payload, data.len);
        data = rt_str(payload, dl < 0 ? 0 : (size_t)dl);
        ctype = rt_str(NULL, 0);
    }
    if (ok && data.len > rt_lim.max_message_bytes) {
        fail(req, M_PUBLISH, 413, "too_large", "data", "data is %zu bytes; the limit is %zu (limits.max_message_bytes)", data.len,
             (size_t)rt_lim.max_message_bytes);
        ok = 0;
    }
    int eph = spec[3].present && spec[3].f.type == 't';
    for (size_t i = 0; ok && i < c->ntopics; i++) {
        rt_msg_t *msg = rt_msg_new(rt_cstr(c->topics[i]), event, ctype, data);
        if (eph) {
            msg->flags |= RT_MSG_EPHEMERAL;
            rt_metrics_ephemeral();
            c->errs[i] = rt_bus->ops->publish_ephemeral(rt_bus, msg);
            c->failed += c->errs[i] != RT_OK;
            continue;
        }
        pub_slot_t *s = rt_malloc(sizeof(*s));
        s->c = c, s->i = i;
        c->refs++;
        rt_webhook_bus_publish(msg, idem, on_published, s);
    }
    free(payload);
    if (!ok)
        call_take(c); /* answered already */
    publish_put(c);
}

/* ---------- commands run on every node ---------- */

static void append_missing(rt_buf_t *b, size_t nresults, const char *const *missing, size_t nmissing)
{
    rt_buf_printf(b, ",\"nodes\":%zu,\"missing\":[", nresults);
    for (size_t i = 0; i < nmissing; i++) {
        if (i)
            rt_buf_appendc(b, ",");
        rt_json_append_string(b, rt_cstr(missing[i]));
    }
    rt_buf_appendc(b, "]");
}

static int cmp_count(const void *a, const void *b)
{
    return strcmp(((const rt_api_count_t *)a)->topic, ((const rt_api_count_t *)b)->topic);
}

/* GET /api/topics: every node's counts merged, sorted by topic, one page after `after`. */
static void topics_answer(call_t *c, h2o_req_t *req, rt_api_result_t *res, size_t n, rt_buf_t *b)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < n; i++)
        total += res[i].ntopics;
    rt_api_count_t *all = rt_calloc(total + 1, sizeof(*all));
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < res[i].ntopics; t++)
            all[k++] = res[i].topics[t];
    qsort(all, total, sizeof(*all), cmp_count);
    rt_str_t after = {NULL, 0};
    rt_req_query(req, "after", 0, &after);
    rt_buf_appendc(b, "{\"topics\":[");
    size_t shown = 0;
    const char *last = NULL;
    int more = 0;
    for (size_t i = 0; i < total;) {
        size_t j = i, subs = 0;
        for (; j < total && strcmp(all[j].topic, all[i].topic) == 0; j++)
            subs += all[j].n;
        rt_str_t name = rt_cstr(all[i].topic);
        int past = after.len == 0 || strncmp(name.base, after.base, after.len) > 0 ||
                   (strncmp(name.base, after.base, after.len) == 0 && name.len > after.len);
        if (past) {
            if (shown == c->limit) {
                more = 1;
                break;
            }
            rt_buf_appendc(b, shown ? ",{\"topic\":" : "{\"topic\":");
            rt_json_append_string(b, name);
            rt_buf_printf(b, ",\"subscribers\":%zu}", subs);
            last = all[i].topic;
            shown++;
        }
        i = j;
    }
    rt_buf_appendc(b, "],\"next\":");
    if (more)
        rt_json_append_string(b, rt_cstr(last));
    else
        rt_buf_appendc(b, "null");
    free(all); /* the names are the results' */
}

static void on_topic_replayed(void *ctx, rt_replay_t *r, int err)
{
    call_t *c = ctx;
    (void)r;
    h2o_req_t *req = call_take(c);
    if (req != NULL) {
        rt_buf_t *b = &c->head;
        rt_buf_printf(b, ",\"retained\":%zu,\"last_id\":", err == RT_OK ? c->r.count : 0);
        if (err == RT_OK && c->r.count)
            rt_json_append_string(b, c->r.msgs[c->r.count - 1]->id);
        else
            rt_buf_appendc(b, "null");
        rt_buf_append(b, c->tail.base, c->tail.len);
        rt_buf_appendc(b, "}");
        reply(req, c->method, 200, b);
    }
    if (err == RT_OK)
        rt_replay_release(&c->r);
    call_put(c);
}

/* Subscribers and presence now; what is retained once the bus answers. */
static void topic_answer(call_t *c, rt_api_result_t *res, size_t n, const char *const *missing, size_t nmissing)
{
    size_t subs = 0;
    for (size_t i = 0; i < n; i++)
        subs += res[i].count;
    rt_str_t topic = rt_cstr(c->cmd.topic);
    rt_buf_appendc(&c->head, "{\"topic\":");
    rt_json_append_string(&c->head, topic);
    rt_buf_printf(&c->head, ",\"subscribers\":%zu,\"presence\":", subs);
    rt_presence_snapshot(topic, &c->head);
    append_missing(&c->tail, n, missing, nmissing);
    c->r.patterns = &topic;
    c->r.npatterns = 1;
    c->r.has_since = 1;
    c->r.since.epoch = rt_bus->ops->epoch(rt_bus);
    int err = rt_bus->ops->replay(rt_bus, &c->r, on_topic_replayed, c);
    c->r.patterns = NULL, c->r.npatterns = 0; /* a bus that answers later copied them */
    if (err != RT_REPLAY_PENDING)
        on_topic_replayed(c, &c->r, err);
}

static void on_cluster_done(void *arg, rt_api_result_t *res, size_t n, const char *const *missing, size_t nmissing)
{
    call_t *c = arg;
    if (c->cmd.op == RT_API_TOPIC && c->req != NULL) {
        topic_answer(c, res, n, missing, nmissing);
        return;
    }
    h2o_req_t *req = call_take(c);
    if (req == NULL) {
        call_put(c);
        return;
    }
    rt_buf_t b = {0};
    size_t sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += res[i].count;
    switch (c->cmd.op) {
    case RT_API_DISCONNECT: rt_buf_printf(&b, "{\"disconnected\":%zu", sum); break;
    case RT_API_SUBSCRIBE:
    case RT_API_UNSUBSCRIBE:
        rt_buf_printf(&b, "{\"connections\":%zu", sum);
        break;
    case RT_API_FORGET:
        rt_buf_appendc(&b, "{\"topic\":");
        rt_json_append_string(&b, rt_cstr(c->cmd.topic));
        rt_buf_printf(&b, ",\"dropped\":%zu", res[0].count);
        break;
    case RT_API_TOPICS: topics_answer(c, req, res, n, &b); break;
    case RT_API_TOPIC: break; /* topic_answer */
    case RT_API_INFO:
        rt_buf_appendc(&b, "{\"nodes\":[");
        for (size_t i = 0; i < n; i++) {
            if (i)
                rt_buf_appendc(&b, ",");
            rt_buf_append(&b, res[i].info.base, res[i].info.len);
        }
        rt_buf_appendc(&b, "]");
        break;
    }
    if (c->cmd.op == RT_API_INFO)
        rt_buf_printf(&b, ",\"missing\":[");
    else
        append_missing(&b, n, missing, nmissing);
    if (c->cmd.op == RT_API_INFO) {
        for (size_t i = 0; i < nmissing; i++) {
            if (i)
                rt_buf_appendc(&b, ",");
            rt_json_append_string(&b, rt_cstr(missing[i]));
        }
        rt_buf_appendc(&b, "]");
    }
    rt_buf_appendc(&b, "}");
    reply(req, c->method, 200, &b);
    call_put(c);
}

static void run(h2o_req_t *req, int method, const rt_api_cmd_t *cmd, size_t limit)
{
    call_t *c = call_new(req, method);
    c->cmd = *cmd;
    c->limit = limit;
    rt_api_cluster_run(&c->cmd, on_cluster_done, c);
}

static void api_disconnect(h2o_req_t *req)
{
    field_t spec[] = {{.name = "user", .types = "s", .type_name = "a string"},
                      {.name = "client", .types = "s", .type_name = "a string"},
                      {.name = "reason", .types = "sz", .type_name = "a string"},
                      {.name = "reconnect", .types = "tf", .type_name = "true or false"}};
    if (parse_body(req, M_DISCONNECT, spec, 4) != 0)
        return;
    rt_api_cmd_t cmd = {.op = RT_API_DISCONNECT, .reconnect = !(spec[3].present && spec[3].f.type == 'f')};
    if (spec[0].present == spec[1].present) {
        fail(req, M_DISCONNECT, 400, "invalid_parameter", "user", "give exactly one of \"user\" and \"client\"");
        return;
    }
    if (spec[0].present ? string_field(req, M_DISCONNECT, &spec[0], cmd.user, sizeof(cmd.user), 128) <= 0
                        : string_field(req, M_DISCONNECT, &spec[1], cmd.client, sizeof(cmd.client), RT_CLIENT_MAX) <= 0) {
        if (!req->res.status)
            fail(req, M_DISCONNECT, 400, "invalid_parameter", spec[0].present ? "user" : "client", "must not be empty");
        return;
    }
    if (spec[2].present && spec[2].f.type == 's') {
        int n = string_field(req, M_DISCONNECT, &spec[2], cmd.reason, sizeof(cmd.reason), 200);
        if (n < 0)
            return;
        for (int i = 0; i < n; i++)
            if ((unsigned char)cmd.reason[i] < 0x20) {
                fail(req, M_DISCONNECT, 400, "invalid_parameter", "reason", "reason must not hold control characters");
                return;
            }
    }
    run(req, M_DISCONNECT, &cmd, 0);
}

static void api_subscription(h2o_req_t *req, int method)
{
    field_t spec[] = {{.name = "user", .types = "s", .type_name = "a string"}, {.name = "topic", .types = "s", .type_name = "a string"}};
    if (parse_body(req, method, spec, 2) != 0)
        return;
    rt_api_cmd_t cmd = {.op = method == M_SUBSCRIBE ? RT_API_SUBSCRIBE : RT_API_UNSUBSCRIBE};
    for (int i = 0; i < 2; i++)
        if (!spec[i].present) {
            fail(req, method, 400, "invalid_parameter", spec[i].name, "field \"%s\" is required", spec[i].name);
            return;
        }
    int ul = string_field(req, method, &spec[0], cmd.user, sizeof(cmd.user), 128);
    if (ul == 0)
        fail(req, method, 400, "invalid_parameter", "user", "must not be empty");
    if (ul <= 0)
        return;
    int tl = string_field(req, method, &spec[1], cmd.topic, sizeof(cmd.topic), RT_TOPIC_MAX);
    if (tl < 0 || exact_topic(req, method, "topic", rt_str(cmd.topic, (size_t)tl), 1) != 0)
        return;
    run(req, method, &cmd, 0);
}

static void api_topics(h2o_req_t *req)
{
    static const char *const allowed[] = {"pattern", "limit", "after", NULL};
    if (check_query(req, M_TOPICS, allowed) != 0)
        return;
    rt_api_cmd_t cmd = {.op = RT_API_TOPICS};
    rt_str_t v;
    if (rt_req_query(req, "pattern", 0, &v)) {
        if (exact_topic(req, M_TOPICS, "pattern", v, 1) != 0)
            return;
        memcpy(cmd.topic, v.base, v.len);
    }
    long limit = 100;
    if (rt_req_query(req, "limit", 0, &v)) {
        char buf[16], *end;
        snprintf(buf, sizeof(buf), "%.*s", (int)(v.len > 15 ? 15 : v.len), v.base);
        limit = strtol(buf, &end, 10);
        if (v.len == 0 || v.len > 15 || *end || limit < 1 || limit > 1000) {
            fail(req, M_TOPICS, 400, "invalid_parameter", "limit", "limit is a number from 1 to 1000");
            return;
        }
    }
    run(req, M_TOPICS, &cmd, (size_t)limit);
}

static int method_is(h2o_req_t *req, const char *m) { return h2o_memis(req->method.base, req->method.len, m, strlen(m)); }

void rt_api_handle(h2o_req_t *req, rt_str_t path)
{
    static const struct {
        const char *path, *method;
        int id;
    } routes[] = {{"/api/publish", "POST", M_PUBLISH},   {"/api/disconnect", "POST", M_DISCONNECT},
                  {"/api/subscribe", "POST", M_SUBSCRIBE}, {"/api/unsubscribe", "POST", M_UNSUBSCRIBE},
                  {"/api/topics", "GET", M_TOPICS},      {"/api/info", "GET", M_INFO}};
    if (!rt_api_enabled()) {
        rt_http_error_status(req, 404, "not_found", "the server API is off (no api.keys)");
        return;
    }
    if (!rt_api_key_ok(req)) {
        count(M_OTHER, 401);
        rt_http_error_status(req, 401, "unauthorized", "the server API needs \"Authorization: apikey <key>\" with a key of api.keys");
        return;
    }
    int method = M_OTHER;
    rt_str_t tail = {NULL, 0};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (rt_str_eqc(path, routes[i].path))
            method = routes[i].id;
    if (method == M_OTHER && path.len > 12 && memcmp(path.base, "/api/topics/", 12) == 0)
        method = M_TOPIC, tail = rt_str(path.base + 12, path.len - 12);
    if (method == M_OTHER && path.len > 13 && memcmp(path.base, "/api/history/", 13) == 0)
        method = M_HISTORY, tail = rt_str(path.base + 13, path.len - 13);
    if (method == M_OTHER) {
        fail(req, M_OTHER, 404, "not_found", NULL, "no such API endpoint; see the README's Server API section");
        return;
    }
    const char *want = method == M_HISTORY ? "DELETE" : method == M_TOPICS || method == M_TOPIC || method == M_INFO ? "GET" : "POST";
    if (!method_is(req, want)) {
        fail(req, method, 405, "method_not_allowed", NULL, "use %s", want);
        return;
    }
    if (method != M_TOPICS && method != M_TOPIC) {
        static const char *const none[] = {NULL};
        if (check_query(req, method, none) != 0)
            return;
    }
    rt_api_cmd_t cmd = {0};
    switch (method) {
    case M_PUBLISH: api_publish(req); return;
    case M_DISCONNECT: api_disconnect(req); return;
    case M_SUBSCRIBE:
    case M_UNSUBSCRIBE: api_subscription(req, method); return;
    case M_TOPICS: api_topics(req); return;
    case M_INFO: cmd.op = RT_API_INFO; break;
    case M_TOPIC:
    case M_HISTORY: {
        static const char *const none[] = {NULL};
        if ((method == M_TOPIC && check_query(req, method, none) != 0) || exact_topic(req, method, "topic", tail, 0) != 0)
            return;
        cmd.op = method == M_TOPIC ? RT_API_TOPIC : RT_API_FORGET;
        memcpy(cmd.topic, tail.base, tail.len);
        break;
    }
    }
    run(req, method, &cmd, 0);
}
