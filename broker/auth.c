/*
 * Authorization decisions for subscribe and publish, and where tokens come from.
 * A subscription pattern is allowed only when a granted pattern covers every topic
 * it can match (rt_topic_covers), so `chat.*` never grants `chat.>`. Tokenless
 * clients get auth.anonymous.*; nothing is open when those keys are absent. A token
 * that is presented must be valid, even where anonymous access would do.
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "ops.h"
#include "topic.h"

static const rt_cfg_value_t *anon_sub, *anon_pub;
static const char *cookie_name;
/* http.allowed_origins: a copy of its own, replaced under the lock by SIGHUP */
static pthread_rwlock_t origins_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **origins;
static size_t norigins;

static int check_list(const rt_cfg_value_t *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->nlist; i++) {
        if (rt_topic_check(rt_cstr(v->list[i]), 1, NULL) != RT_OK) {
            snprintf(err, errlen, "config: %s: \"%s\" is not a topic pattern (segments of A-Z a-z 0-9 _ -, '*', '>' last)",
                     v->path, v->list[i]);
            if (v->line)
                snprintf(err + strlen(err), errlen - strlen(err), " (line %d)", v->line);
            return -1;
        }
    }
    return 0;
}

static int check_origins(const rt_cfg_value_t *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->nlist; i++) {
        const char *o = v->list[i];
        if (strcmp(o, "*") != 0 && strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0) {
            snprintf(err, errlen, "config: http.allowed_origins: \"%s\" is not an origin (https://host[:port], or *)", o);
            if (v->line)
                snprintf(err + strlen(err), errlen - strlen(err), " (line %d)", v->line);
            return -1;
        }
    }
    return 0;
}

static void set_origins(const rt_cfg_value_t *v)
{
    char **list = rt_calloc(v->nlist ? v->nlist : 1, sizeof(char *));
    for (size_t i = 0; i < v->nlist; i++)
        list[i] = rt_strndup(rt_cstr(v->list[i]));
    pthread_rwlock_wrlock(&origins_lock);
    char **old = origins;
    size_t nold = norigins;
    origins = list, norigins = v->nlist;
    pthread_rwlock_unlock(&origins_lock);
    for (size_t i = 0; i < nold; i++)
        free(old[i]);
    free(old);
}

int rt_auth_init(char *err, size_t errlen)
{
    anon_sub = rt_cfg("auth.anonymous.subscribe");
    anon_pub = rt_cfg("auth.anonymous.publish");
    cookie_name = rt_cfg_str("auth.cookie");
    if (check_list(anon_sub, err, errlen) || check_list(anon_pub, err, errlen) ||
        check_origins(rt_cfg("http.allowed_origins"), err, errlen))
        return -1;
    set_origins(rt_cfg("http.allowed_origins"));
    return rt_jwt_init(err, errlen);
}

int rt_auth_reload_check(char *err, size_t errlen) { return check_origins(rt_cfg_next("http.allowed_origins"), err, errlen); }

void rt_auth_reload_apply(void) { set_origins(rt_cfg_next("http.allowed_origins")); }

static rt_str_t cookie(h2o_req_t *req, const char *name)
{
    size_t nlen = strlen(name);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, H2O_TOKEN_COOKIE, i)) != -1;) {
        const char *p = req->headers.entries[i].value.base, *end = p + req->headers.entries[i].value.len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == ';'))
                p++;
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            if (eq && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0)
                return rt_str(eq + 1, (size_t)(stop - eq - 1));
            p = stop;
        }
    }
    return rt_str(NULL, 0);
}

/* Where a token came from: a cookie is sent by the browser whatever page asks, the others only by the page's
 * code, so they come first. */
enum { FROM_NONE, FROM_HEADER, FROM_QUERY, FROM_PROTOCOL, FROM_COOKIE };

static rt_str_t token_of(h2o_req_t *req, int *from)
{
    rt_str_t v = rt_req_header(req, "authorization");
    *from = FROM_HEADER;
    if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0)
        return rt_str(v.base + 7, v.len - 7);
    *from = FROM_QUERY;
    if (rt_req_query(req, "token", 0, &v) && v.len)
        return v;
    *from = FROM_PROTOCOL;
    v = rt_req_header(req, "sec-websocket-protocol");
    for (size_t i = 0; i < v.len;) {
        while (i < v.len && (v.base[i] == ' ' || v.base[i] == ','))
            i++;
        size_t s = i;
        while (i < v.len && v.base[i] != ',' && v.base[i] != ' ')
            i++;
        if (i - s > 7 && memcmp(v.base + s, "bearer.", 7) == 0)
            return rt_str(v.base + s + 7, i - s - 7);
    }
    *from = FROM_COOKIE;
    if ((v = cookie(req, cookie_name)).len)
        return v;
    *from = FROM_NONE;
    return rt_str(NULL, 0);
}

static int lower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

static int eq_nocase(rt_str_t a, rt_str_t b)
{
    if (a.len != b.len)
        return 0;
    for (size_t i = 0; i < a.len; i++)
        if (lower((unsigned char)a.base[i]) != lower((unsigned char)b.base[i]))
            return 0;
    return 1;
}

/* Whether origin is the broker's own scheme://host[:port] as the browser saw it: the scheme from X-Forwarded-Proto
 * (a proxy that ends TLS) or the connection, the Host header, a default port left out as browsers do. A page on
 * another site cannot forge these headers: WebSocket sets none, and a fetch that sets one needs a preflight. */
static int own_origin(h2o_req_t *req, rt_str_t origin)
{
    rt_str_t scheme = rt_req_header(req, "x-forwarded-proto");
    const char *comma = scheme.len ? memchr(scheme.base, ',', scheme.len) : NULL;
    if (comma)
        scheme.len = (size_t)(comma - scheme.base);
    if (scheme.len == 0)
        scheme = rt_str(req->input.scheme->name.base, req->input.scheme->name.len);
    rt_str_t host = rt_str(req->input.authority.base, req->input.authority.len);
    if (origin.len < scheme.len + 3 || !eq_nocase(rt_str(origin.base, scheme.len), scheme) ||
        memcmp(origin.base + scheme.len, "://", 3) != 0)
        return 0;
    rt_str_t ohost = rt_str(origin.base + scheme.len + 3, origin.len - scheme.len - 3);
    if (eq_nocase(ohost, host))
        return 1;
    const char *dflt = eq_nocase(scheme, rt_cstr("https")) ? ":443" : ":80";
    size_t dl = strlen(dflt);
    return host.len > dl && memcmp(host.base + host.len - dl, dflt, dl) == 0 && eq_nocase(ohost, rt_str(host.base, host.len - dl));
}

/* -1: no list (any Origin), 1: listed (by name, or by `*` when star), 0: not listed */
static int origin_listed(rt_str_t origin, int star)
{
    int r = 0;
    pthread_rwlock_rdlock(&origins_lock);
    if (norigins == 0)
        r = -1;
    for (size_t i = 0; i < norigins && r == 0; i++)
        if ((star && strcmp(origins[i], "*") == 0) || rt_str_eqc(origin, origins[i]))
            r = 1;
    pthread_rwlock_unlock(&origins_lock);
    return r;
}

/* NULL when a token from the cookie may be used on this request, else why not. Browsers send Origin on every
 * WebSocket upgrade and every cross-origin fetch, EventSource or POST; a request without it comes from a
 * non-browser client or a same-origin GET, unless Sec-Fetch-Site says a browser sent it from another site
 * (an <img>, <script> or link). `*` in http.allowed_origins does not vouch for a cookie: only a name does. */
static const char *cookie_refusal(h2o_req_t *req)
{
    static __thread char why[320];
    rt_str_t origin = rt_req_header(req, "origin");
    if (origin.len == 0) {
        rt_str_t site = rt_req_header(req, "sec-fetch-site");
        if (site.len == 0 || rt_str_eqc(site, "same-origin") || rt_str_eqc(site, "none"))
            return NULL;
        snprintf(why, sizeof(why), "a token from the %.64s cookie is not accepted on a request another site made (Sec-Fetch-Site: %.*s)",
                 cookie_name, (int)(site.len > 16 ? 16 : site.len), site.base);
        return why;
    }
    if (origin_listed(origin, 0) == 1 || own_origin(req, origin))
        return NULL;
    snprintf(why, sizeof(why), "a token from the %.64s cookie is accepted only from this server's own origin or one named in "
             "http.allowed_origins; send it as Authorization: Bearer, token= or a WebSocket subprotocol",
             cookie_name);
    return why;
}

rt_str_t rt_auth_token(h2o_req_t *req)
{
    int from;
    rt_str_t token = token_of(req, &from);
    return token.len && from == FROM_COOKIE && cookie_refusal(req) ? rt_str(NULL, 0) : token;
}

int rt_auth_verify(h2o_req_t *req, rt_ident_t **id, const char **why)
{
    int from;
    *id = NULL;
    *why = NULL;
    rt_str_t token = token_of(req, &from);
    if (token.len == 0 || (from == FROM_COOKIE && (*why = cookie_refusal(req)) != NULL))
        return RT_OK; /* an ignored cookie is no credential: anonymous access still applies, nothing more */
    return rt_jwt_verify(token, id, why);
}

int rt_auth_identify(h2o_req_t *req, rt_ident_t **id, const char **why)
{
    int err = rt_auth_verify(req, id, why);
    if (err != RT_OK || *why) {
        char ip[64];
        rt_peer_ip(req, ip, sizeof(ip));
        if (err != RT_OK)
            rt_metrics_auth_failure();
        rt_log(RT_LOG_INFO, "auth: %s a token from %s: %s", err != RT_OK ? "refused" : "ignored", ip, *why);
    }
    return err;
}

static int granted(char **pats, size_t n, rt_str_t pattern)
{
    for (size_t i = 0; i < n; i++)
        if (rt_topic_covers(rt_cstr(pats[i]), pattern))
            return 1;
    return 0;
}

int rt_auth_allows(const rt_ident_t *id, rt_str_t pattern, int publish)
{
    const rt_cfg_value_t *anon = publish ? anon_pub : anon_sub;
    if (granted(anon->list, anon->nlist, pattern))
        return RT_OK;
    if (id && (publish ? granted(id->pub_pats, id->npub, pattern) : granted(id->sub_pats, id->nsub, pattern)))
        return RT_OK;
    rt_metrics_auth_failure();
    return id ? RT_EFORBIDDEN : RT_EUNAUTHORIZED;
}

int rt_auth_anonymous_open(void) { return anon_sub->nlist > 0 || anon_pub->nlist > 0; }
int rt_auth_anonymous_subscribe(void) { return anon_sub->nlist > 0; }

static void format_ip(const struct sockaddr_storage *ss, socklen_t len, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    if (len == 0)
        return;
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)outlen);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)outlen);
}

void rt_peer_ip(h2o_req_t *req, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    format_ip(&ss, req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss), out, outlen);
}

void rt_sock_peer_ip(h2o_socket_t *sock, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    format_ip(&ss, h2o_socket_getpeername(sock, (struct sockaddr *)&ss), out, outlen);
}

int rt_origin_allowed(h2o_req_t *req)
{
    rt_str_t origin = rt_req_header(req, "origin");
    return origin.len == 0 || origin_listed(origin, 1) != 0;
}

void rt_cors_headers(h2o_req_t *req)
{
    rt_str_t origin = rt_req_header(req, "origin");
    if (origin.len == 0)
        return;
    int listed = origin_listed(origin, 1);
    if (listed < 0) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, H2O_STRLIT("*"));
        return;
    }
    if (!listed)
        return;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCESS_CONTROL_ALLOW_ORIGIN, NULL, origin.base, origin.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-credentials"), 0, NULL,
                          H2O_STRLIT("true"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Origin"));
}

void rt_cors_preflight(h2o_req_t *req)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          H2O_STRLIT("GET, POST, OPTIONS"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
                          H2O_STRLIT("Authorization, Content-Type, Last-Event-ID, Idempotency-Key, X-Event, X-Ephemeral"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL, H2O_STRLIT("600"));
    rt_http_respond(req, 204, NULL, "", 0);
}
