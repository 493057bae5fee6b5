/*
 * The configuration loader: libyaml turns the file into a tree; every leaf becomes
 * a (path, text, line) pair; each declared key takes its value from the environment
 * (RTB_<PATH>), else the file, else its default, and is checked once here so that
 * handlers never parse config. Errors name the key and the line or the variable.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"
#include "namespace.h"
#include "config_file.h"
#include "config_listen.h"


static rt_cfg_value_t *vals;
static size_t nvals, capvals;
/* The table rt_cfg reads once frozen: workers read it at any time, so it never changes again (a SIGHUP reads the
 * file into a new table, and what may change while running is copied out of that into rt_lim and auth.c). */
static const rt_cfg_value_t *frozen;
static size_t nfrozen;
/* Replayed when the file is read again: the command line's overrides and the sections of disabled plugins. */
static struct {
    char *path, *value;
} overrides[8];
static size_t noverrides;
static char *ignored[32];
static size_t nignored;

#define K(p, t, d, mn, mx) {.path = (p), .type = (t), .default_value = (d), .min = (mn), .max = (mx)}
static const rt_cfg_value_t core_keys[] = {
    K("listen", RT_CFG_LISTEN, "127.0.0.1:8080", 0, 0),
    K("workers", RT_CFG_INT, "0", 0, 256),
    K("bus", RT_CFG_STRING, "memory", 0, 0),
    K("log.level", RT_CFG_STRING, "info", 0, 0),
    K("web.root", RT_CFG_STRING, "web", 0, 0),
    K("plugins.dir", RT_CFG_STRING, "", 0, 0),
    K("plugins.load", RT_CFG_LIST, "sse,longpoll,websocket,ndjson", 0, 0),
    K("history.max_messages", RT_CFG_INT, "100", 1, 10000000),
    K("history.max_age", RT_CFG_DURATION, "1h", 1000, 366LL * 86400 * 1000),
    K("history.max_bytes", RT_CFG_SIZE, "256MiB", 1LL << 20, 1LL << 40),
    K("history.cache_bytes", RT_CFG_SIZE, "32MiB", 0, 1LL << 40),
    K("history.max_topics", RT_CFG_INT, "100000", 1, 100000000),
    K("presence.ttl", RT_CFG_DURATION, "30s", 1000, 3600LL * 1000),
    K("presence.poll_grace", RT_CFG_DURATION, "10s", 0, 3600LL * 1000),
    K("presence.client_secret", RT_CFG_STRING, "", 0, 0),
    K("publish.dedup_window", RT_CFG_DURATION, "2m", 0, 86400LL * 1000),
    K("limits.max_message_bytes", RT_CFG_SIZE, "65536", 1, 64LL << 20),
    K("limits.max_queue_bytes", RT_CFG_SIZE, "1MiB", 1024, 1LL << 32),
    K("limits.max_topics", RT_CFG_INT, "32", 1, 1024),
    K("limits.max_connections", RT_CFG_INT, "0", 0, 100000000),
    K("limits.request_timeout", RT_CFG_DURATION, "10s", 100, 3600LL * 1000),
    K("shutdown.drain", RT_CFG_DURATION, "10s", 0, 3600LL * 1000),
    K("auth.anonymous.subscribe", RT_CFG_LIST, "", 0, 0),
    K("proxy.connect.url", RT_CFG_STRING, "", 0, 0),
    K("proxy.connect.forward_headers", RT_CFG_LIST, "", 0, 0),
    K("proxy.subscribe.url", RT_CFG_STRING, "", 0, 0),
    K("proxy.subscribe.forward_headers", RT_CFG_LIST, "", 0, 0),
    K("proxy.publish.url", RT_CFG_STRING, "", 0, 0),
    K("proxy.publish.forward_headers", RT_CFG_LIST, "", 0, 0),
    K("proxy.refresh.url", RT_CFG_STRING, "", 0, 0),
    K("proxy.refresh.forward_headers", RT_CFG_LIST, "", 0, 0),
    K("proxy.timeout", RT_CFG_DURATION, "1s", 10, 60000),
    K("proxy.failure_policy", RT_CFG_STRING, "deny", 0, 0),
    K("proxy.max_in_flight", RT_CFG_INT, "1000", 1, 1000000),
    K("auth.anonymous.publish", RT_CFG_LIST, "", 0, 0),
    K("auth.cookie", RT_CFG_STRING, "rt_token", 0, 0),
    K("auth.jwt.secret", RT_CFG_STRING, "", 0, 0),
    K("auth.jwt.public_key_file", RT_CFG_STRING, "", 0, 0),
    K("auth.jwt.algorithms", RT_CFG_LIST, "", 0, 0),
    K("auth.jwt.leeway", RT_CFG_DURATION, "30s", 0, 3600LL * 1000),
    K("auth.jwt.require_exp", RT_CFG_BOOL, "true", 0, 0),
    K("auth.jwt.issuer", RT_CFG_STRING, "", 0, 0),
    K("auth.jwt.audience", RT_CFG_STRING, "", 0, 0),
    K("auth.jwt.claim", RT_CFG_STRING, "rt", 0, 0),
    K("http.allowed_origins", RT_CFG_LIST, "", 0, 0),
    K("nats.url", RT_CFG_LIST, "nats://127.0.0.1:4222", 0, 0),
    K("nats.subject_prefix", RT_CFG_STRING, "rt", 0, 0),
    K("nats.stream", RT_CFG_STRING, "", 0, 0),
    K("nats.replicas", RT_CFG_INT, "1", 1, 5),
    K("nats.token", RT_CFG_STRING, "", 0, 0),
    K("nats.user", RT_CFG_STRING, "", 0, 0),
    K("nats.password", RT_CFG_STRING, "", 0, 0),
    K("nats.creds", RT_CFG_STRING, "", 0, 0),
    K("nats.tls_ca", RT_CFG_STRING, "", 0, 0),
    K("nats.tls_cert", RT_CFG_STRING, "", 0, 0),
    K("nats.tls_key", RT_CFG_STRING, "", 0, 0),
    K("nats.publish_timeout", RT_CFG_DURATION, "10s", 100, 600000),
    K("nats.reorder_window", RT_CFG_DURATION, "100ms", 0, 1000),
    K("limits.connections_per_ip", RT_CFG_INT, "1000", 0, 1000000),
    K("limits.publish_per_connection", RT_CFG_INT, "200", 0, 1000000),
    K("limits.publish_per_subject", RT_CFG_INT, "1000", 0, 1000000),
};
#define NOWN (sizeof(core_keys) / sizeof(core_keys[0]))
#define NCORE (NOWN + rt_cfg_napi_keys) /* core keys: this table's, then the server API's (config_api.c) */

static void set_err(char *err, size_t errlen, const rt_cfg_value_t *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_err(char *err, size_t errlen, const rt_cfg_value_t *v, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (v->line > 0 && strcmp(v->origin, "file") == 0)
        snprintf(err, errlen, "config: %s: %s (%s line %d)", v->path, msg, rt_cfgf.name, v->line);
    else if (strcmp(v->origin, "default") == 0 || strcmp(v->origin, "file") == 0)
        snprintf(err, errlen, "config: %s: %s", v->path, msg);
    else
        snprintf(err, errlen, "config: %s (%s): %s", v->path, v->origin, msg);
}

static void free_value(rt_cfg_value_t *v)
{
    rt_cfg_entries_free(v);
    free(v->s);
    for (size_t i = 0; v->list && i < v->nlist; i++) {
        free(v->list[i]);
        if (v->tls)
            rt_listen_tls_free(v->tls[i]);
    }
    free(v->list);
    free(v->tls);
    v->s = NULL, v->list = NULL, v->tls = NULL, v->nlist = 0;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_strndup(rt_str(s, n));
}

/* Sets v from items (one scalar, or a list; for listen, tls gives each item's TLS part when not NULL); returns 0
 * or -1 with err. */
static int assign(rt_cfg_value_t *v, char **items, size_t n, int is_seq, rt_listen_tls_t *const *tls, char *err,
                  size_t errlen)
{
    free_value(v);
    if (v->type == RT_CFG_MAPS) {
        set_err(err, errlen, v, "a list of mappings is read from the file only");
        return -1;
    }
    if (v->type == RT_CFG_LIST || v->type == RT_CFG_LISTEN) {
        v->list = rt_calloc(n ? n : 1, sizeof(char *));
        if (v->type == RT_CFG_LISTEN && tls != NULL)
            v->tls = rt_calloc(n ? n : 1, sizeof(*v->tls));
        for (size_t i = 0; i < n; i++) {
            if (items[i][0] == '\0')
                continue;
            if (v->type == RT_CFG_LISTEN) {
                rt_listen_addr_t a;
                int r = rt_parse_addr(items[i], &a);
                if (r == -2) {
                    set_err(err, errlen, v, "\"%s\" does not end in a port (1-65535)", items[i]);
                    return -1;
                }
                if (r < 0) {
                    set_err(err, errlen, v, "\"%s\" is not an address: use HOST:PORT, [IPv6]:PORT or PORT", items[i]);
                    return -1;
                }
            }
            if (v->tls && tls[i]) {
                rt_listen_tls_t *t = rt_malloc(sizeof(*t));
                *t = *tls[i];
                t->cert = rt_strndup(rt_cstr(tls[i]->cert));
                t->key = rt_strndup(rt_cstr(tls[i]->key));
                v->tls[v->nlist] = t;
            }
            v->list[v->nlist++] = rt_strndup(rt_cstr(items[i]));
        }
        if (v->type == RT_CFG_LISTEN && v->nlist == 0) {
            set_err(err, errlen, v, "at least one address is needed");
            return -1;
        }
        return 0;
    }
    if (is_seq || n != 1) {
        set_err(err, errlen, v, "expected a single value, not a list");
        return -1;
    }
    const char *s = items[0];
    int64_t x = 0;
    switch (v->type) {
    case RT_CFG_STRING: v->s = rt_strndup(rt_cstr(s)); return 0;
    case RT_CFG_BOOL:
        if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on") || !strcmp(s, "1"))
            x = 1;
        else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off") || !strcmp(s, "0"))
            x = 0;
        else {
            set_err(err, errlen, v, "\"%s\" is not a boolean (true or false)", s);
            return -1;
        }
        break;
    case RT_CFG_INT: {
        char *end;
        errno = 0;
        long long ll = strtoll(s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno) {
            set_err(err, errlen, v, "\"%s\" is not an integer", s);
            return -1;
        }
        x = ll;
        break;
    }
    case RT_CFG_DURATION:
        if (rt_parse_duration_ms(s, &x) != 0) {
            set_err(err, errlen, v, "\"%s\" is not a duration (e.g. 250ms, 15s, 2m, 1h)", s);
            return -1;
        }
        break;
    case RT_CFG_SIZE:
        if (rt_parse_size(s, &x) != 0) {
            set_err(err, errlen, v, "\"%s\" is not a size (e.g. 65536, 64KiB, 1MiB)", s);
            return -1;
        }
        break;
    }
    if (v->min < v->max && (x < v->min || x > v->max)) {
        set_err(err, errlen, v, "%s is out of range [%lld, %lld]%s", s, (long long)v->min, (long long)v->max,
                v->type == RT_CFG_DURATION ? " ms" : v->type == RT_CFG_SIZE ? " bytes" : "");
        return -1;
    }
    v->i = x;
    return 0;
}

static void env_name(const char *path, char *out, size_t outlen)
{
    size_t o = snprintf(out, outlen, "RTB_");
    for (const char *p = path; *p && o + 1 < outlen; p++)
        out[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}


/* listen from the environment or the command line in YAML flow style: [ADDR, {address: ADDR, tls: {cert: F, key: F}}] */
static int assign_listen_flow(rt_cfg_value_t *v, const char *text, char *err, size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        set_err(err, errlen, v, "not a YAML flow list at column %lu: %s", (unsigned long)parser.problem_mark.column + 1,
                parser.problem ? parser.problem : "invalid YAML");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        char **items = NULL;
        rt_listen_tls_t **tls = NULL;
        size_t n = 0;
        if (root == NULL)
            set_err(err, errlen, v, "at least one address is needed");
        else if (rt_listen_entries(&doc, root, v->origin, rt_cfgf.name, &items, &tls, &n, err, errlen) == 0)
            rc = assign(v, items, n, 1, tls, err, errlen);
        rt_listen_entries_free(items, tls, n);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}

const rt_listen_tls_t *rt_cfg_listen_tls(size_t i)
{
    const rt_cfg_value_t *v = rt_cfg("listen");
    return v && v->tls && i < v->nlist ? v->tls[i] : NULL;
}

void rt_cfg_listen_error(size_t i, const char *field, char *err, size_t errlen, const char *fmt, ...)
{
    const rt_cfg_value_t *v = rt_cfg("listen");
    const rt_listen_tls_t *t = rt_cfg_listen_tls(i);
    int key = strcmp(field, "key") == 0;
    va_list ap;
    va_start(ap, fmt);
    rt_listen_verr(err, errlen, i, key ? "tls.key" : "tls.cert", v->origin, rt_cfgf.name, t ? (key ? t->key_line : t->cert_line) : 0,
                   fmt, ap);
    va_end(ap);
}

/* Splits a comma-separated env value into items. */
static int assign_text(rt_cfg_value_t *v, const char *text, char *err, size_t errlen)
{
    char *items[256];
    size_t n = 0;
    const char *t = text + strspn(text, " \t"), *close = strchr(t, ']');
    /* a flow list or mapping; "[::1]:8080" (a bracket, hex digits and colons, "]:") is an address */
    int ipv6 = t[0] == '[' && (isxdigit((unsigned char)t[1]) || t[1] == ':') && close != NULL && close[1] == ':';
    if (v->type == RT_CFG_LISTEN && (t[0] == '{' || (t[0] == '[' && !ipv6)))
        return assign_listen_flow(v, t, err, errlen);
    if (v->type == RT_CFG_LIST || v->type == RT_CFG_LISTEN) {
        const char *p = text;
        while (*p && n < 256) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            items[n++] = trim_dup(p, len);
            p += len + (c ? 1 : 0);
        }
    } else {
        items[n++] = trim_dup(text, strlen(text));
    }
    int r = assign(v, items, n, 0, NULL, err, errlen);
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    return r;
}

/* A plugin's key `sse.heartbeat` may also be written `plugins.sse.heartbeat` (env RTB_PLUGINS_SSE_HEARTBEAT). */
static int resolve_alias(rt_cfg_value_t *v, const char *alias, char *err, size_t errlen)
{
    char env[160], aenv[160];
    env_name(v->path, env, sizeof(env));
    env_name(alias, aenv, sizeof(aenv));
    raw_t *r = rt_cfg_raw(v->path), *a = rt_cfg_raw(alias);
    if (r && a) {
        snprintf(err, errlen, "config: %s: given twice, also as %s (%s lines %d and %d)", v->path, alias, rt_cfgf.name, r->line,
                 a->line);
        return -1;
    }
    if (a)
        a->used = 1; /* even when a variable overrides it: the line stays valid */
    if (a && !getenv(env) && !getenv(aenv)) {
        v->origin = "file";
        v->line = a->line;
        return assign(v, a->items, a->n, a->is_seq, NULL, err, errlen);
    }
    if (getenv(aenv) && !getenv(env)) {
        if (r)
            r->used = 1;
        v->origin = strdup(aenv);
        v->line = 0;
        return assign_text(v, getenv(aenv), err, errlen);
    }
    return 1; /* not given under the alias */
}

static int resolve(rt_cfg_value_t *v, char *err, size_t errlen)
{
    char env[160];
    env_name(v->path, env, sizeof(env));
    const char *e = getenv(env);
    if (v->type == RT_CFG_MAPS && e != NULL) {
        snprintf(err, errlen, "config: %s (%s): a list of mappings is read from the file only; unset %s", v->path, env,
                 env);
        return -1;
    }
    if (v->type == RT_CFG_MAPS)
        return rt_cfg_file_maps(v, err, errlen);
    raw_t *r = rt_cfg_raw(v->path);
    if (r)
        r->used = 1;
    if (e != NULL) {
        v->origin = strdup(env);
        v->line = 0;
        return assign_text(v, e, err, errlen);
    }
    if (r && r->is_maps) { /* only RT_CFG_MAPS keys take mappings */
        snprintf(err, errlen, "config: %s: list items must be plain values (%s line %d)", v->path, rt_cfgf.name,
                 r->item_lines[0]);
        return -1;
    }
    if (r) {
        v->origin = "file";
        v->line = r->line;
        return assign(v, r->items, r->n, r->is_seq, r->tls, err, errlen);
    }
    v->origin = "default";
    v->line = 0;
    return assign_text(v, v->default_value, err, errlen);
}

static rt_cfg_value_t *find_val(const char *path)
{
    for (size_t k = 0; k < nvals; k++)
        if (strcmp(vals[k].path, path) == 0)
            return &vals[k];
    return NULL;
}

static rt_cfg_value_t *add_value(const rt_cfg_value_t *tmpl)
{
    if (nvals == capvals) {
        capvals = capvals ? capvals * 2 : 64;
        vals = rt_realloc(vals, capvals * sizeof(*vals));
    }
    rt_cfg_value_t *v = &vals[nvals++];
    *v = *tmpl;
    v->s = NULL, v->list = NULL, v->nlist = 0, v->entries = NULL;
    return v;
}


static void free_tables(void)
{
    rt_cfg_file_free();
    for (size_t i = 0; i < nvals; i++) {
        free_value(&vals[i]);
        if (vals[i].origin && strncmp(vals[i].origin, "RTB_", 4) == 0)
            free((char *)vals[i].origin);
        if (i >= NCORE)
            free((char *)vals[i].path);
    }
    free(vals);
    vals = NULL, nvals = capvals = 0;
}

void rt_config_reset(void)
{
    free_tables();
    frozen = NULL, nfrozen = 0;
    for (size_t i = 0; i < noverrides; i++)
        free(overrides[i].path), free(overrides[i].value);
    for (size_t i = 0; i < nignored; i++)
        free(ignored[i]);
    noverrides = nignored = 0;
}

int rt_config_load(const char *path, char *err, size_t errlen)
{
    if (path && rt_cfg_file_parse(path, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < NCORE; i++)
        if (resolve(add_value(i < NOWN ? &core_keys[i] : &rt_cfg_api_keys[i - NOWN]), err, errlen) != 0)
            return -1;
    return 0;
}

/* A plugin's key: from its own path, or from plugins.<path> (not for keys under plugins. themselves). */
static int declare(const char *path, int type, const char *default_value, int64_t min, int64_t max, char *err,
                   size_t errlen)
{
    if (find_val(path))
        return 0;
    char alias[300];
    snprintf(alias, sizeof(alias), "plugins.%s", path);
    rt_cfg_value_t tmpl = K(strdup(path), type, default_value, min, max);
    rt_cfg_value_t *v = add_value(&tmpl);
    int r = strncmp(path, "plugins.", 8) == 0 ? 1 : resolve_alias(v, alias, err, errlen);
    return r < 0 || (r == 1 && resolve(v, err, errlen) != 0) ? -1 : 0;
}

int rt_config_add_section(const char *section, const rt_cfg_key_t *keys, char *err, size_t errlen)
{
    for (const rt_cfg_key_t *k = keys; k && k->name; k++) {
        char path[256];
        snprintf(path, sizeof(path), "%s.%s", section, k->name);
        if (declare(path, (int)k->type, k->default_value, k->min, k->max, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static void mark_ignored(const char *section)
{
    size_t n = strlen(section);
    for (size_t i = 0; i < rt_cfgf.nraws; i++)
        if (strncmp(rt_cfgf.raws[i].path, section, n) == 0 && rt_cfgf.raws[i].path[n] == '.')
            rt_cfgf.raws[i].used = 1;
}

void rt_config_ignore_section(const char *section)
{
    mark_ignored(section);
    if (nignored < sizeof(ignored) / sizeof(ignored[0]))
        ignored[nignored++] = strdup(section);
}

extern char **environ;

/* An RTB_ variable that names no key is likely a typo that would silently do nothing: say so (a warning, since
 * tools around the broker use RTB_ names of their own). */
static void check_env(void)
{
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "RTB_", 4) != 0)
            continue;
        size_t n = strcspn(*e, "=");
        int known = 0;
        for (size_t k = 0; k < nvals && !known; k++) {
            char name[160], alias[300], aname[320];
            env_name(vals[k].path, name, sizeof(name));
            snprintf(alias, sizeof(alias), "plugins.%s", vals[k].path);
            env_name(alias, aname, sizeof(aname));
            known = (strlen(name) == n && strncmp(*e, name, n) == 0) || (strlen(aname) == n && strncmp(*e, aname, n) == 0);
        }
        if (!known)
            rt_log(RT_LOG_WARN, "config: the environment variable %.*s names no configuration key (a typo?); see the "
                                "configuration reference in README.md",
                   (int)(n > 100 ? 100 : n), *e);
    }
}

static const void *reloading; /* non-NULL between rt_config_reload_begin and _end */

int rt_config_check_unknown(char *err, size_t errlen)
{
    if (!reloading)
        check_env();
    for (size_t i = 0; i < rt_cfgf.nraws; i++) {
        if (rt_cfgf.raws[i].used)
            continue;
        size_t plen = strlen(rt_cfgf.raws[i].path);
        int empty = !rt_cfgf.raws[i].is_seq && rt_cfgf.raws[i].n == 1 && rt_cfgf.raws[i].items[0][0] == '\0';
        for (size_t k = 0; k < nvals; k++) {
            if (strncmp(vals[k].path, rt_cfgf.raws[i].path, plen) == 0 && vals[k].path[plen] == '.') {
                if (empty)
                    goto next; /* a section whose keys are all commented out */
                snprintf(err, errlen, "config: %s: expected a mapping of keys, got a value (%s line %d)", rt_cfgf.raws[i].path,
                         rt_cfgf.name, rt_cfgf.raws[i].line);
                return -1;
            }
        }
        /* name the first key of the path that nothing declares (a misspelt section, not the key under it) */
        size_t at = 0;
        int depth = 0, line = rt_cfgf.raws[i].line;
        for (const char *dot = rt_cfgf.raws[i].path; (dot = strchr(dot, '.')) != NULL; dot++, depth++) {
            size_t len = (size_t)(dot - rt_cfgf.raws[i].path);
            int section = 0;
            for (size_t k = 0; k < nvals && !section; k++)
                section = strncmp(vals[k].path, rt_cfgf.raws[i].path, len) == 0 && vals[k].path[len] == '.';
            if (!section)
                break;
            at = len + 1;
        }
        if (depth < 12 && rt_cfgf.raws[i].key_lines[depth])
            line = rt_cfgf.raws[i].key_lines[depth];
        size_t end = at + strcspn(rt_cfgf.raws[i].path + at, ".");
        snprintf(err, errlen, "config: %.*s: unknown key (%s line %d); see the configuration reference in README.md",
                 (int)end, rt_cfgf.raws[i].path, rt_cfgf.name, line);
        return -1;
    next:;
    }
    return 0;
}

int rt_config_override(const char *path, const char *value, char *err, size_t errlen)
{
    rt_cfg_value_t *v = find_val(path);
    if (v == NULL) {
        snprintf(err, errlen, "config: %s: unknown key", path);
        return -1;
    }
    v->origin = "command line";
    v->line = 0;
    if (!reloading && noverrides < sizeof(overrides) / sizeof(overrides[0])) {
        overrides[noverrides].path = strdup(path);
        overrides[noverrides++].value = strdup(value);
    }
    return assign_text(v, value, err, errlen);
}

const rt_cfg_value_t *rt_cfg(const char *path)
{
    if (frozen == NULL)
        return find_val(path);
    for (size_t k = 0; k < nfrozen; k++)
        if (strcmp(frozen[k].path, path) == 0)
            return &frozen[k];
    return NULL;
}

void rt_config_freeze(void)
{
    rt_lim.max_topics = (size_t)rt_cfg_int("limits.max_topics");
    rt_lim.max_message_bytes = (size_t)rt_cfg_int("limits.max_message_bytes");
    rt_config_set_limits(rt_cfg);
    frozen = vals, nfrozen = nvals;
}

/* ---------- SIGHUP ---------- */

/* Keys applied by a reload; any other key that changed is logged as waiting for a restart. */
static const char *const reloadable[] = {"limits.max_connections", "limits.max_queue_bytes", "limits.connections_per_ip",
                                         "limits.publish_per_connection", "limits.publish_per_subject",
                                         "http.allowed_origins", NULL};

static struct {
    rt_cfg_file_t file;
    rt_cfg_value_t *vals;
    size_t nvals, capvals;
} live;

int rt_config_reload_begin(const char *path, char *err, size_t errlen)
{
    if (frozen == NULL || reloading) {
        snprintf(err, errlen, "config: no configuration to reload");
        return -1;
    }
    /* the tables in use stay as they are (workers read them); the file is read into fresh ones */
    live.file = rt_cfgf, live.vals = vals, live.nvals = nvals, live.capvals = capvals;
    reloading = &live;
    rt_cfgf.raws = NULL, rt_cfgf.nraws = 0, vals = NULL, nvals = capvals = 0;
    if (rt_config_load(path, err, errlen) != 0)
        return -1;
    for (size_t i = NCORE; i < live.nvals; i++) {
        const rt_cfg_value_t *o = &live.vals[i];
        if (declare(o->path, o->type, o->default_value, o->min, o->max, err, errlen) != 0)
            return -1;
    }
    for (size_t i = 0; i < noverrides; i++)
        if (rt_config_override(overrides[i].path, overrides[i].value, err, errlen) != 0)
            return -1;
    for (size_t i = 0; i < nignored; i++)
        mark_ignored(ignored[i]);
    return rt_config_check_unknown(err, errlen);
}

const rt_cfg_value_t *rt_cfg_next(const char *path) { return reloading ? find_val(path) : NULL; }

static int same_value(const rt_cfg_value_t *a, const rt_cfg_value_t *b)
{
    if (a->type == RT_CFG_STRING || a->type == RT_CFG_MAPS)
        return strcmp(a->s ? a->s : "", b->s ? b->s : "") == 0;
    if (a->type == RT_CFG_LIST || a->type == RT_CFG_LISTEN) {
        if (a->nlist != b->nlist)
            return 0;
        for (size_t i = 0; i < a->nlist; i++) {
            const rt_listen_tls_t *ta = a->tls ? a->tls[i] : NULL, *tb = b->tls ? b->tls[i] : NULL;
            if (strcmp(a->list[i], b->list[i]) != 0 || !ta != !tb ||
                (ta && (strcmp(ta->cert, tb->cert) != 0 || strcmp(ta->key, tb->key) != 0)))
                return 0;
        }
        return 1;
    }
    return a->i == b->i;
}

void rt_config_reload_end(int apply)
{
    if (!reloading)
        return;
    if (apply) {
        for (size_t i = 0; i < nvals; i++) {
            const rt_cfg_value_t *n = &vals[i], *o = NULL;
            for (size_t k = 0; k < live.nvals && o == NULL; k++)
                if (strcmp(live.vals[k].path, n->path) == 0)
                    o = &live.vals[k];
            int can = 0;
            for (size_t k = 0; reloadable[k]; k++)
                can |= strcmp(reloadable[k], n->path) == 0;
            if (!can && o && !same_value(o, n))
                rt_log(RT_LOG_WARN, "SIGHUP: %s changed (%s line %d) but takes effect only after a restart", n->path,
                       rt_cfgf.name, n->line);
        }
        rt_config_set_limits(rt_cfg_next);
    }
    free_tables();
    rt_cfgf = live.file, vals = live.vals, nvals = live.nvals, capvals = live.capvals;
    reloading = NULL;
}

void rt_cfg_error(const char *path, char *err, size_t errlen, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const rt_cfg_value_t *v = find_val(path); /* the table being loaded or reloaded */
    rt_cfg_value_t unknown = {.path = path, .origin = "default"};
    set_err(err, errlen, v ? v : &unknown, "%s", msg);
}

int64_t rt_cfg_int(const char *path)
{
    const rt_cfg_value_t *v = rt_cfg(path);
    return v ? v->i : 0;
}

const char *rt_cfg_str(const char *path)
{
    const rt_cfg_value_t *v = rt_cfg(path);
    return v && v->s ? v->s : "";
}
