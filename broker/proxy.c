/*
 * Proxy calls, the common part: the proxy.* keys, the JSON of a call and of an answer, the verdict with the failure
 * policy applied, the bound on calls in flight and their metrics. A call never blocks a worker: its verdict comes
 * back on the worker's loop. What waits for a verdict (requests, subscribes, publishes) is proxy_flow.c's; the HTTP
 * is httpclient.c's.
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

#define EV_COUNT RT_PROXY_NEVENTS
#define EV_CONNECT RT_PROXY_CONNECT
static const char *const ev_names[EV_COUNT] = {"connect", "subscribe", "publish", "refresh"};
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
        if (rt_httpc_target_parse(url, &hooks[e].target, 0, &why) != 0) {
            rt_cfg_error(key, err, errlen, "\"%s\" %s", url, why);
            return -1;
        }
        hooks[e].on = 1;
        snprintf(key, sizeof(key), "proxy.%s.forward_headers", ev_names[e]);
        const rt_cfg_value_t *fh = rt_cfg(key);
        hooks[e].headers = rt_calloc(fh->nlist + 1, sizeof(char *));
        for (size_t i = 0; i < fh->nlist; i++) {
            const char *name = fh->list[i];
            if (strspn(name, "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != strlen(name)) {
                rt_cfg_error(key, err, errlen, "\"%s\" is not a header name", name);
                return -1;
            }
            char *h = rt_strndup(rt_cstr(name));
            for (char *c = h; *c; c++)
                *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c); /* h2o keeps request header names in lower case */
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

int rt_proxy_enabled(int event) { return hooks[event].on; }

/* user and claims: the connection's identity when it has one; else the request's token, when it verifies. */
static void append_identity(rt_buf_t *b, h2o_req_t *req, const rt_ident_t *who)
{
    rt_ident_t *id = NULL;
    const char *why;
    rt_str_t tok = req ? rt_auth_token(req) : rt_str(NULL, 0);
    if (tok.len && (rt_auth_identify(req, &id, &why) != RT_OK || id == NULL))
        tok.len = 0;
    const rt_ident_t *u = who ? who : id;
    rt_buf_appendc(b, ",\"user\":");
    if (u && u->user[0])
        rt_json_append_string(b, rt_cstr(u->user));
    else
        rt_buf_appendc(b, "null");
    rt_ident_free(id);
    char claims[4096];
    size_t n = 0;
    const char *dot1 = tok.len ? memchr(tok.base, '.', tok.len) : NULL;
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', tok.len - (size_t)(dot1 + 1 - tok.base)) : NULL;
    rt_buf_appendc(b, ",\"claims\":");
    if (dot2 && rt_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), claims, sizeof(claims), &n) == 0 &&
        rt_json_valid(claims, n))
        rt_json_append_compact(b, rt_str(claims, n));
    else
        rt_buf_appendc(b, "null");
}

void rt_proxy_describe(rt_buf_t *b, int ev, rt_str_t client, const char *transport, h2o_req_t *req, h2o_socket_t *sock,
                       const rt_ident_t *who)
{
    char ip[64] = "?";
    if (req)
        rt_peer_ip(req, ip, sizeof(ip));
    else if (sock)
        rt_sock_peer_ip(sock, ip, sizeof(ip));
    rt_buf_printf(b, "{\"event\":\"%s\",\"client\":", ev_names[ev]);
    if (client.len)
        rt_json_append_string(b, client);
    else
        rt_buf_appendc(b, "null");
    rt_buf_appendc(b, ",\"transport\":");
    rt_json_append_string(b, rt_cstr(transport));
    rt_buf_appendc(b, ",\"ip\":");
    rt_json_append_string(b, rt_cstr(ip));
    append_identity(b, req, who);
    rt_buf_appendc(b, ",\"headers\":{");
    const hook_t *h = &hooks[ev];
    for (size_t i = 0, first = 1; req && i < h->nheaders; i++) {
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

/* The answer read: R_ALLOW (v->grant, v->data maybe set), R_DENY (v->err, v->reason) or R_ERROR (v->reason). */
typedef rt_proxy_verdict_t answer_t;

static int fail(answer_t *a, const char *fmt, const char *detail)
{
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
    rt_str_t user = {0}, info = {0}, subs = {0}, pubs = {0}, reason = {0}, data = {0};
    char data_type = 0;
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
        else if (rt_str_eqc(k, "data"))
            data = v, data_type = t;
    }
    if (allow < 0)
        return fail(a, "%s", "answered without \"allow\":true or false");
    if (!allow) {
        a->err = code == 401 ? RT_EUNAUTHORIZED : code == 403 ? RT_EFORBIDDEN : code == 429 ? RT_ERATELIMIT : 0;
        if (a->err == 0)
            return fail(a, "%s", "refused with a code other than 401, 403 or 429");
        int rl = reason.len ? rt_json_unescape(reason, a->reason, sizeof(a->reason) - 1) : -1;
        if (rl <= 0)
            snprintf(a->reason, sizeof(a->reason), "refused by the application backend");
        else
            a->reason[rl] = '\0';
        return R_DENY;
    }
    if (ev == RT_PROXY_PUBLISH && data.len) { /* a string replaces the payload with its text, another value with its JSON */
        a->data = rt_malloc(data.len + 1);
        int dl = data_type == 's' ? rt_json_unescape(data, a->data, data.len) : (memcpy(a->data, data.base, data.len), (int)data.len);
        a->data_len = dl < 0 ? 0 : (size_t)dl;
    }
    if (ev == RT_PROXY_REFRESH && exp_at > 0)
        a->expire_at_ms = (int64_t)(exp_at * 1000);
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
    a->grant->proxied = 1;
    rt_buf_free(&perms);
    return R_ALLOW;
}

struct rt_proxy_call {
    rt_httpc_call_t *http;
    int event;
    uint64_t t0;
    rt_proxy_done_t done;
    void *arg;
};

/* A failure becomes a verdict under proxy.failure_policy: allowed, or 503 unavailable. */
static void apply_policy(answer_t *a, int result)
{
    if (result == R_DENY)
        return;
    if (result == R_ERROR && !policy_allow) {
        char why[sizeof(a->reason)];
        snprintf(why, sizeof(why), "%s", a->reason);
        snprintf(a->reason, sizeof(a->reason), "the application backend could not decide (%.160s); retry later", why);
        a->err = RT_EUNAVAILABLE;
        return;
    }
    a->err = RT_OK;
}

static void on_answer(void *arg, int status, rt_str_t body, const char *err)
{
    rt_proxy_call_t *c = arg;
    atomic_fetch_sub(&in_flight, 1);
    answer_t a;
    int r = read_answer(c->event, status, body, err, &a);
    count(c->event, r, c->t0);
    if (r == R_ERROR)
        rt_log(RT_LOG_WARN, "proxy: %s call failed: %s", ev_names[c->event], a.reason);
    apply_policy(&a, r);
    rt_proxy_done_t done = c->done;
    void *darg = c->arg;
    free(c);
    done(darg, &a);
}

rt_proxy_call_t *rt_proxy_ask(int event, rt_str_t body, rt_proxy_done_t done, void *arg, rt_proxy_verdict_t *now)
{
    if (atomic_fetch_add(&in_flight, 1) >= max_in_flight) {
        atomic_fetch_sub(&in_flight, 1);
        memset(now, 0, sizeof(*now));
        snprintf(now->reason, sizeof(now->reason), "proxy.max_in_flight calls are already waiting");
        count(event, R_ERROR, rt_now_ms());
        apply_policy(now, R_ERROR);
        return NULL;
    }
    rt_proxy_call_t *c = rt_calloc(1, sizeof(*c));
    c->event = event;
    c->t0 = rt_now_ms();
    c->done = done;
    c->arg = arg;
    c->http = rt_httpc_post(rt_current_worker, &hooks[event].target, body, NULL, timeout_ms, on_answer, c);
    return c;
}

void rt_proxy_cancel(rt_proxy_call_t *c)
{
    atomic_fetch_sub(&in_flight, 1);
    rt_httpc_cancel(c->http);
    free(c);
}
