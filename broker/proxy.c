/*
 * Proxy calls: before a transport sees a subscribe request, the broker POSTs the event to the application backend
 * (proxy.connect.url) and waits for its verdict without blocking the worker: the request stays pending until the
 * answer, a timeout or a failure, then goes on to the transport (with the identity the backend granted) or gets
 * the refusal. Owns the proxy.* keys, the JSON of the calls and answers, the in-flight bound and their metrics.
 * The HTTP itself is httpclient.c's.
 */
#include "proxy.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "httpclient.h"
#include "hub.h"
#include "presence.h"
#include "text.h"

enum { EV_CONNECT, EV_COUNT };
static const char *const ev_names[EV_COUNT] = {"connect"};
enum { R_ALLOW, R_DENY, R_ERROR };
static const char *const result_names[] = {"allow", "deny", "error"};

typedef struct hook {
    int on;
    rt_httpc_target_t target;
    char **headers; /* lower-case names to forward */
    size_t nheaders;
} hook_t;

static hook_t hooks[EV_COUNT];
static uint64_t timeout_ms;
static int policy_allow;
static size_t max_in_flight;
static atomic_size_t in_flight; /* calls waiting for an answer, all workers */
__thread rt_ident_t *rt_proxy_grant;
__thread int rt_proxy_refusal;

static const double bucket_s[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
#define NBUCKETS (sizeof(bucket_s) / sizeof(bucket_s[0]))
static atomic_ulong m_calls[EV_COUNT][3], m_buckets[EV_COUNT][NBUCKETS], m_sum_us[EV_COUNT];

static void count(int ev, int result, uint64_t t0)
{
    uint64_t us = rt_ms_since(t0, rt_now_ms()) * 1000;
    atomic_fetch_add_explicit(&m_calls[ev][result], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m_sum_us[ev], us, memory_order_relaxed);
    for (size_t i = 0; i < NBUCKETS; i++)
        if (us <= bucket_s[i] * 1e6)
            atomic_fetch_add_explicit(&m_buckets[ev][i], 1, memory_order_relaxed);
}

void rt_proxy_metrics(rt_buf_t *b)
{
    rt_buf_appendc(b, "# HELP rtbroker_proxy_calls_total Calls to the application backend (proxy.*) by event and result.\n"
                      "# TYPE rtbroker_proxy_calls_total counter\n");
    for (int e = 0; e < EV_COUNT; e++)
        for (int r = 0; r < 3; r++)
            rt_buf_printf(b, "rtbroker_proxy_calls_total{event=\"%s\",result=\"%s\"} %lu\n", ev_names[e], result_names[r],
                          atomic_load_explicit(&m_calls[e][r], memory_order_relaxed));
    rt_buf_appendc(b, "# HELP rtbroker_proxy_call_seconds How long calls to the application backend took.\n"
                      "# TYPE rtbroker_proxy_call_seconds histogram\n");
    for (int e = 0; e < EV_COUNT; e++) {
        unsigned long total = 0;
        for (int r = 0; r < 3; r++)
            total += atomic_load_explicit(&m_calls[e][r], memory_order_relaxed);
        for (size_t i = 0; i < NBUCKETS; i++)
            rt_buf_printf(b, "rtbroker_proxy_call_seconds_bucket{event=\"%s\",le=\"%g\"} %lu\n", ev_names[e], bucket_s[i],
                          atomic_load_explicit(&m_buckets[e][i], memory_order_relaxed));
        rt_buf_printf(b,
                      "rtbroker_proxy_call_seconds_bucket{event=\"%s\",le=\"+Inf\"} %lu\n"
                      "rtbroker_proxy_call_seconds_sum{event=\"%s\"} %.6f\n"
                      "rtbroker_proxy_call_seconds_count{event=\"%s\"} %lu\n",
                      ev_names[e], total, ev_names[e], atomic_load_explicit(&m_sum_us[e], memory_order_relaxed) / 1e6,
                      ev_names[e], total);
    }
}

int rt_proxy_init(char *err, size_t errlen)
{
    char key[64];
    for (int e = 0; e < EV_COUNT; e++) {
        snprintf(key, sizeof(key), "proxy.%s.url", ev_names[e]);
        const char *url = rt_cfg_str(key), *why;
        if (url == NULL || url[0] == '\0')
            continue;
        if (rt_httpc_target_parse(url, &hooks[e].target, &why) != 0) {
            rt_cfg_error(key, err, errlen, "\"%s\" %s", url, why);
            return -1;
        }
        hooks[e].on = 1;
        snprintf(key, sizeof(key), "proxy.%s.forward_headers", ev_names[e]);
        const rt_cfg_value_t *fh = rt_cfg(key);
        hooks[e].headers = rt_calloc(fh->nlist + 1, sizeof(char *));
        for (size_t i = 0; i < fh->nlist; i++) {
            char *h = rt_strndup(rt_cstr(fh->list[i]));
            for (char *c = h; *c; c++) {
                if (!(*c == '-' || (*c >= '0' && *c <= '9') || ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z'))) {
                    rt_cfg_error(key, err, errlen, "\"%s\" is not a header name", h);
                    free(h);
                    return -1;
                }
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
            }
            hooks[e].headers[hooks[e].nheaders++] = h;
        }
    }
    timeout_ms = (uint64_t)rt_cfg_int("proxy.timeout");
    max_in_flight = (size_t)rt_cfg_int("proxy.max_in_flight");
    const char *pol = rt_cfg_str("proxy.failure_policy");
    if (strcmp(pol, "deny") != 0 && strcmp(pol, "allow") != 0) {
        rt_cfg_error("proxy.failure_policy", err, errlen, "\"%s\" is neither deny nor allow", pol);
        return -1;
    }
    policy_allow = strcmp(pol, "allow") == 0;
    return 0;
}

int rt_proxy_connect_enabled(void) { return hooks[EV_CONNECT].on; }

/* The claims of the request's token, when it verifies: its payload as JSON; else null. Fills *id too. */
static void append_identity(rt_buf_t *b, h2o_req_t *req)
{
    rt_ident_t *id = NULL;
    const char *why;
    rt_str_t tok = rt_auth_token(req);
    if (tok.len == 0 || rt_auth_identify(req, &id, &why) != RT_OK || id == NULL) {
        rt_buf_appendc(b, ",\"user\":null,\"claims\":null");
        return;
    }
    rt_buf_appendc(b, ",\"user\":");
    if (id->user[0])
        rt_json_append_string(b, rt_cstr(id->user));
    else
        rt_buf_appendc(b, "null");
    rt_ident_free(id);
    char claims[4096];
    size_t n = 0;
    const char *dot1 = memchr(tok.base, '.', tok.len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', tok.len - (size_t)(dot1 + 1 - tok.base)) : NULL;
    rt_buf_appendc(b, ",\"claims\":");
    if (dot2 && rt_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), claims, sizeof(claims), &n) == 0 &&
        rt_json_valid(claims, n))
        rt_json_append_compact(b, rt_str(claims, n));
    else
        rt_buf_appendc(b, "null");
}

static void append_headers(rt_buf_t *b, const hook_t *h, h2o_req_t *req)
{
    rt_buf_appendc(b, ",\"headers\":{");
    int first = 1;
    for (size_t i = 0; i < h->nheaders; i++) {
        rt_str_t v = rt_req_header(req, h->headers[i]);
        if (v.base == NULL)
            continue;
        rt_buf_appendc(b, first ? "" : ",");
        first = 0;
        rt_json_append_string(b, rt_cstr(h->headers[i]));
        rt_buf_appendc(b, ":");
        rt_json_append_string(b, v);
    }
    rt_buf_appendc(b, "}");
}

/* What the backend said. */
typedef struct answer {
    int result;       /* R_ALLOW, R_DENY or R_ERROR */
    int err;          /* R_DENY: RT_EUNAUTHORIZED, RT_EFORBIDDEN or RT_ERATELIMIT */
    char reason[256]; /* R_DENY: the backend's reason; R_ERROR: what went wrong */
    rt_ident_t *grant; /* R_ALLOW on connect: the identity it gave, or NULL to keep the request's own */
} answer_t;

static int fail(answer_t *a, const char *fmt, const char *detail)
{
    a->result = R_ERROR;
    snprintf(a->reason, sizeof(a->reason), fmt, detail);
    return R_ERROR;
}

/* A JSON number slice as a double; 0 when it does not fit. */
static double number(rt_str_t v)
{
    char tmp[32];
    if (v.len >= sizeof(tmp))
        return 0;
    memcpy(tmp, v.base, v.len);
    tmp[v.len] = '\0';
    return strtod(tmp, NULL);
}

static int read_answer(int ev, int status, rt_str_t body, const char *err, answer_t *a)
{
    memset(a, 0, sizeof(*a));
    if (err)
        return fail(a, "%s", err);
    if (status != 200) {
        char s[16];
        snprintf(s, sizeof(s), "%d", status);
        return fail(a, "answered HTTP %s", s);
    }
    rt_json_field_t f[32];
    int n = rt_json_object(body, f, 32);
    if (n < 0)
        return fail(a, "%s", "answered something else than a JSON object");
    int allow = -1, granted = 0;
    rt_str_t user = {0}, info = {0}, subs = {0}, pubs = {0}, reason = {0};
    double exp_at = 0, code = 403;
    for (int i = 0; i < n; i++) {
        rt_str_t k = f[i].key, v = f[i].value;
        char t = f[i].type;
        if (rt_str_eqc(k, "allow") && (t == 't' || t == 'f'))
            allow = t == 't';
        else if (rt_str_eqc(k, "code") && t == 'n')
            code = number(v);
        else if (rt_str_eqc(k, "reason") && t == 's')
            reason = v;
        else if (rt_str_eqc(k, "user") && t == 's')
            user = v, granted = 1;
        else if (rt_str_eqc(k, "info") && t == 'o')
            info = v, granted = 1;
        else if (rt_str_eqc(k, "subscribe") && t == 'a')
            subs = v, granted = 1;
        else if (rt_str_eqc(k, "publish") && t == 'a')
            pubs = v, granted = 1;
        else if (rt_str_eqc(k, "expire_at") && t == 'n')
            exp_at = number(v), granted = 1;
    }
    if (allow < 0)
        return fail(a, "%s", "answered without \"allow\":true or false");
    if (!allow) {
        a->result = R_DENY;
        a->err = code == 401 ? RT_EUNAUTHORIZED : code == 403 ? RT_EFORBIDDEN : code == 429 ? RT_ERATELIMIT : 0;
        if (a->err == 0)
            return fail(a, "%s", "refused with a code other than 401, 403 or 429");
        int rl = reason.len ? rt_json_unescape(reason, a->reason, sizeof(a->reason) - 1) : -1;
        if (rl <= 0)
            snprintf(a->reason, sizeof(a->reason), "refused by the application backend");
        else
            a->reason[rl] = '\0';
        return a->result;
    }
    a->result = R_ALLOW;
    if (ev != EV_CONNECT || !granted)
        return R_ALLOW;
    char name[sizeof(((rt_ident_t *)0)->user)];
    int ulen = user.len ? rt_json_unescape(user, name, sizeof(name) - 1) : 0;
    if (ulen < 0 || info.len > 1024)
        return fail(a, "%s", ulen < 0 ? "granted a user over 128 bytes" : "granted an info over 1 KiB");
    name[ulen] = '\0';
    rt_buf_t perms = {0};
    rt_buf_appendc(&perms, "{\"sub\":");
    rt_buf_appends(&perms, subs.len ? subs : RT_STRLIT("[]"));
    rt_buf_appendc(&perms, ",\"pub\":");
    rt_buf_appends(&perms, pubs.len ? pubs : RT_STRLIT("[]"));
    if (info.len) {
        rt_buf_appendc(&perms, ",\"info\":");
        rt_buf_appends(&perms, info);
    }
    rt_buf_append(&perms, "}", 2);
    a->grant = rt_ident_new(ulen ? name : NULL, exp_at > 0 ? (int64_t)(exp_at * 1000) : 0, perms.base);
    rt_buf_free(&perms);
    return R_ALLOW;
}

/* A connect waiting for the backend. The anchor lives in the request's pool: when h2o disposes the request first
 * (the client went away), the call is dropped. */
typedef struct pending {
    h2o_req_t *req;
    const rt_transport_t *tp;
    rt_httpc_call_t *call;
    struct pending **anchor;
    uint64_t t0;
} pending_t;

static void on_req_gone(void *p)
{
    pending_t *pc = *(pending_t **)p;
    if (pc == NULL)
        return;
    rt_httpc_cancel(pc->call);
    atomic_fetch_sub(&in_flight, 1);
    free(pc);
}

static void connect_go(h2o_req_t *req, const rt_transport_t *tp, answer_t *a)
{
    if (a->result == R_ERROR && policy_allow)
        a->result = R_ALLOW;
    if (a->result == R_ALLOW) {
        rt_proxy_grant = a->grant;
        tp->start((rt_request_t *)req);
        if (rt_proxy_grant) /* the transport answered without opening a subscriber */
            rt_ident_free(rt_proxy_grant);
        rt_proxy_grant = NULL;
    } else if (a->result == R_DENY && req->upgrade.base != NULL) {
        rt_proxy_refusal = a->err; /* WebSocket: refused after the upgrade, with its close code */
        tp->start((rt_request_t *)req);
        rt_proxy_refusal = 0;
    } else if (a->result == R_DENY) {
        rt_http_error_status(req, rt_err_status(a->err), rt_strerror(a->err), a->reason);
    } else {
        char msg[320];
        snprintf(msg, sizeof(msg), "the application backend could not decide (%s); retry later", a->reason);
        rt_http_error_status(req, 503, "unavailable", msg);
    }
}

static void on_connect_answer(void *arg, int status, rt_str_t body, const char *err)
{
    pending_t *pc = arg;
    *pc->anchor = NULL;
    atomic_fetch_sub(&in_flight, 1);
    answer_t a;
    int r = read_answer(EV_CONNECT, status, body, err, &a);
    count(EV_CONNECT, r, pc->t0);
    if (r == R_ERROR)
        rt_log(RT_LOG_WARN, "proxy: connect call failed: %s", a.reason);
    h2o_req_t *req = pc->req;
    const rt_transport_t *tp = pc->tp;
    free(pc);
    connect_go(req, tp, &a);
}

void rt_proxy_connect(h2o_req_t *req, const rt_transport_t *tp)
{
    rt_worker_t *w = rt_current_worker;
    if (atomic_fetch_add(&in_flight, 1) >= max_in_flight) {
        atomic_fetch_sub(&in_flight, 1);
        answer_t a = {.result = R_ERROR};
        snprintf(a.reason, sizeof(a.reason), "proxy.max_in_flight calls are already waiting");
        count(EV_CONNECT, R_ERROR, rt_now_ms());
        connect_go(req, tp, &a);
        return;
    }
    const hook_t *h = &hooks[EV_CONNECT];
    char client[RT_CLIENT_MAX + 1], ip[64];
    rt_str_t given;
    if (rt_req_query(req, "client", 0, &given) && rt_presence_client_ok(given))
        snprintf(client, sizeof(client), "%.*s", (int)given.len, given.base);
    else
        rt_presence_new_client(client);
    rt_peer_ip(req, ip, sizeof(ip));
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"event\":\"connect\",\"client\":");
    rt_json_append_string(&b, rt_cstr(client));
    rt_buf_appendc(&b, ",\"transport\":");
    rt_json_append_string(&b, rt_cstr(tp->name));
    rt_buf_appendc(&b, ",\"ip\":");
    rt_json_append_string(&b, rt_cstr(ip));
    append_identity(&b, req);
    append_headers(&b, h, req);
    rt_buf_appendc(&b, "}");
    pending_t *pc = rt_calloc(1, sizeof(*pc));
    pc->req = req;
    pc->tp = tp;
    pc->t0 = rt_now_ms();
    pc->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*pc->anchor), on_req_gone);
    *pc->anchor = pc;
    pc->call = rt_httpc_post(w, &h->target, rt_str(b.base, b.len), NULL, timeout_ms, on_connect_answer, pc);
    rt_buf_free(&b);
}
