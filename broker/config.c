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
#include <yaml.h>

#include "config.h"

typedef struct raw {
    char *path;
    char **items; /* scalar: one item; sequence: its items */
    size_t n;
    int is_seq, line, used;
} raw_t;

static raw_t *raws;
static size_t nraws;
static rt_cfg_value_t *vals;
static size_t nvals, capvals;
static char file_name[512] = "(none)";

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
    K("publish.dedup_window", RT_CFG_DURATION, "2m", 0, 86400LL * 1000),
    K("limits.max_message_bytes", RT_CFG_SIZE, "65536", 1, 64LL << 20),
    K("limits.max_queue_bytes", RT_CFG_SIZE, "1MiB", 1024, 1LL << 32),
    K("limits.max_topics", RT_CFG_INT, "32", 1, 1024),
    K("shutdown.drain", RT_CFG_DURATION, "10s", 0, 3600LL * 1000),
    K("auth.anonymous.subscribe", RT_CFG_LIST, "", 0, 0),
    K("auth.anonymous.publish", RT_CFG_LIST, "", 0, 0),
    K("auth.cookie", RT_CFG_STRING, "rt_token", 0, 0),
    K("auth.jwt.secret", RT_CFG_STRING, "", 0, 0),
    K("auth.jwt.public_key_file", RT_CFG_STRING, "", 0, 0),
    K("auth.jwt.algorithms", RT_CFG_LIST, "", 0, 0),
    K("auth.jwt.leeway", RT_CFG_DURATION, "30s", 0, 3600LL * 1000),
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
    K("limits.connections_per_ip", RT_CFG_INT, "1000", 0, 1000000),
    K("limits.publish_per_connection", RT_CFG_INT, "200", 0, 1000000),
    K("limits.publish_per_subject", RT_CFG_INT, "1000", 0, 1000000),
};

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
        snprintf(err, errlen, "config: %s: %s (%s line %d)", v->path, msg, file_name, v->line);
    else if (strcmp(v->origin, "default") == 0 || strcmp(v->origin, "file") == 0)
        snprintf(err, errlen, "config: %s: %s", v->path, msg);
    else
        snprintf(err, errlen, "config: %s (%s): %s", v->path, v->origin, msg);
}

int rt_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || errno || !isfinite(d) || d < 0)
        return -1;
    double mul = 1000; /* bare numbers are seconds */
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else if (strcmp(end, "d") == 0)
        mul = 86400000;
    else
        return -1;
    if (d * mul > 9e15)
        return -1;
    *out = (int64_t)(d * mul + 0.5);
    return 0;
}

int rt_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned long long mul = 1;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mul = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mul = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0)
        mul = 1024ULL * 1024 * 1024;
    else
        return -1;
    if (v > (1ULL << 50) / mul)
        return -1;
    *out = (int64_t)(v * mul);
    return 0;
}

int rt_parse_addr(const char *text, rt_listen_addr_t *out)
{
    char host[128];
    const char *port;
    memset(out, 0, sizeof(*out));
    snprintf(out->text, sizeof(out->text), "%s", text);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            return -1;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            strcpy(host, "127.0.0.1");
            port = text;
        } else {
            if ((size_t)(colon - text) >= sizeof(host))
                return -1;
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            port = colon + 1;
        }
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
        return -2;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        out->len = sizeof(*sin);
        out->loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p);
        out->len = sizeof(*sin6);
        out->loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    } else {
        return -1;
    }
    return 0;
}

static void free_value(rt_cfg_value_t *v)
{
    free(v->s);
    for (size_t i = 0; i < v->nlist; i++)
        free(v->list[i]);
    free(v->list);
    v->s = NULL, v->list = NULL, v->nlist = 0;
}

static char *trim_dup(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return rt_strndup(rt_str(s, n));
}

/* Sets v from items (one scalar, or a list); returns 0 or -1 with err. */
static int assign(rt_cfg_value_t *v, char **items, size_t n, int is_seq, char *err, size_t errlen)
{
    free_value(v);
    if (v->type == RT_CFG_LIST || v->type == RT_CFG_LISTEN) {
        v->list = rt_calloc(n ? n : 1, sizeof(char *));
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

static raw_t *find_raw(const char *path)
{
    for (size_t i = 0; i < nraws; i++)
        if (strcmp(raws[i].path, path) == 0)
            return &raws[i];
    return NULL;
}

/* Splits a comma-separated env value into items. */
static int assign_text(rt_cfg_value_t *v, const char *text, char *err, size_t errlen)
{
    char *items[256];
    size_t n = 0;
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
    int r = assign(v, items, n, 0, err, errlen);
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
    raw_t *r = find_raw(v->path), *a = find_raw(alias);
    if (r && a) {
        snprintf(err, errlen, "config: %s: given twice, also as %s (%s lines %d and %d)", v->path, alias, file_name, r->line,
                 a->line);
        return -1;
    }
    if (a && !getenv(env) && !getenv(aenv)) {
        a->used = 1;
        v->origin = "file";
        v->line = a->line;
        return assign(v, a->items, a->n, a->is_seq, err, errlen);
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
    raw_t *r = find_raw(v->path);
    if (r)
        r->used = 1;
    if (e != NULL) {
        v->origin = strdup(env);
        v->line = 0;
        return assign_text(v, e, err, errlen);
    }
    if (r) {
        v->origin = "file";
        v->line = r->line;
        return assign(v, r->items, r->n, r->is_seq, err, errlen);
    }
    v->origin = "default";
    v->line = 0;
    return assign_text(v, v->default_value, err, errlen);
}

static rt_cfg_value_t *add_value(const rt_cfg_value_t *tmpl)
{
    if (nvals == capvals) {
        capvals = capvals ? capvals * 2 : 64;
        vals = rt_realloc(vals, capvals * sizeof(*vals));
    }
    rt_cfg_value_t *v = &vals[nvals++];
    *v = *tmpl;
    v->s = NULL, v->list = NULL, v->nlist = 0;
    return v;
}

#define MAX_KEYS 1024 /* far above any real file; aliases can make a small file name millions of keys */
static size_t walked;

/* Flattens the YAML tree into raws. */
static int walk(yaml_document_t *doc, yaml_node_t *node, const char *prefix, char *err, size_t errlen)
{
    if (node->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key), *val = yaml_document_get_node(doc, p->value);
            if (k->type != YAML_SCALAR_NODE) {
                snprintf(err, errlen, "config: %s: keys must be plain names (%s line %lu)", prefix[0] ? prefix : "(top)",
                         file_name, (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            char path[256];
            int plen = snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", (char *)k->data.scalar.value);
            if (plen < 0 || (size_t)plen >= sizeof(path)) { /* this also bounds the nesting, and so the recursion */
                snprintf(err, errlen, "config: %.60s...: the key is longer than 255 bytes (%s line %lu)", path, file_name,
                         (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            if (++walked > MAX_KEYS) {
                snprintf(err, errlen, "config: more than %d keys (%s line %lu); an alias (*name) repeats all it points to",
                         MAX_KEYS, file_name, (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            if (find_raw(path)) {
                snprintf(err, errlen, "config: %s: key given twice (%s line %lu)", path, file_name,
                         (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            if (val->type == YAML_MAPPING_NODE) {
                if (walk(doc, val, path, err, errlen) != 0)
                    return -1;
                continue;
            }
            raws = rt_realloc(raws, (nraws + 1) * sizeof(*raws));
            raw_t *r = &raws[nraws++];
            memset(r, 0, sizeof(*r));
            r->path = strdup(path);
            r->line = (int)val->start_mark.line + 1;
            if (val->type == YAML_SCALAR_NODE) {
                r->items = rt_malloc(sizeof(char *));
                r->items[0] = rt_strndup(rt_str((char *)val->data.scalar.value, val->data.scalar.length));
                r->n = 1;
            } else {
                r->is_seq = 1;
                size_t cnt = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
                r->items = rt_calloc(cnt ? cnt : 1, sizeof(char *));
                for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
                    yaml_node_t *item = yaml_document_get_node(doc, *it);
                    if (item->type != YAML_SCALAR_NODE) {
                        snprintf(err, errlen, "config: %s: list items must be plain values (%s line %lu)", path, file_name,
                                 (unsigned long)item->start_mark.line + 1);
                        return -1;
                    }
                    r->items[r->n++] = rt_strndup(rt_str((char *)item->data.scalar.value, item->data.scalar.length));
                }
            }
        }
        return 0;
    }
    snprintf(err, errlen, "config: the file must be a mapping of keys (%s line %lu)", file_name,
             (unsigned long)node->start_mark.line + 1);
    return -1;
}

static int parse_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(file_name, sizeof(file_name), "%s", path);
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        snprintf(err, errlen, "config: %s line %lu: %s %s", path, (unsigned long)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "invalid YAML", parser.context ? parser.context : "");
        rc = -1;
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        walked = 0;
        if (root != NULL && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
            rc = walk(&doc, root, "", err, errlen);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

void rt_config_reset(void)
{
    for (size_t i = 0; i < nraws; i++) {
        for (size_t k = 0; k < raws[i].n; k++)
            free(raws[i].items[k]);
        free(raws[i].items);
        free(raws[i].path);
    }
    free(raws);
    raws = NULL, nraws = 0;
    size_t ncore = sizeof(core_keys) / sizeof(core_keys[0]);
    for (size_t i = 0; i < nvals; i++) {
        free_value(&vals[i]);
        if (vals[i].origin && strncmp(vals[i].origin, "RTB_", 4) == 0)
            free((char *)vals[i].origin);
        if (i >= ncore)
            free((char *)vals[i].path);
    }
    free(vals);
    vals = NULL, nvals = capvals = 0;
    strcpy(file_name, "(none)");
}

int rt_config_load(const char *path, char *err, size_t errlen)
{
    if (path && parse_file(path, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < sizeof(core_keys) / sizeof(core_keys[0]); i++)
        if (resolve(add_value(&core_keys[i]), err, errlen) != 0)
            return -1;
    return 0;
}

int rt_config_add_section(const char *section, const rt_cfg_key_t *keys, char *err, size_t errlen)
{
    for (const rt_cfg_key_t *k = keys; k && k->name; k++) {
        char path[256];
        snprintf(path, sizeof(path), "%s.%s", section, k->name);
        if (rt_cfg(path))
            continue;
        char alias[300];
        snprintf(alias, sizeof(alias), "plugins.%s", path);
        rt_cfg_value_t tmpl = K(strdup(path), (int)k->type, k->default_value, k->min, k->max);
        rt_cfg_value_t *v = add_value(&tmpl);
        int r = strncmp(section, "plugins.", 8) == 0 ? 1 : resolve_alias(v, alias, err, errlen);
        if (r < 0 || (r == 1 && resolve(v, err, errlen) != 0))
            return -1;
    }
    return 0;
}

void rt_config_ignore_section(const char *section)
{
    size_t n = strlen(section);
    for (size_t i = 0; i < nraws; i++)
        if (strncmp(raws[i].path, section, n) == 0 && raws[i].path[n] == '.')
            raws[i].used = 1;
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

int rt_config_check_unknown(char *err, size_t errlen)
{
    check_env();
    for (size_t i = 0; i < nraws; i++) {
        if (raws[i].used)
            continue;
        size_t plen = strlen(raws[i].path);
        int empty = !raws[i].is_seq && raws[i].n == 1 && raws[i].items[0][0] == '\0';
        for (size_t k = 0; k < nvals; k++) {
            if (strncmp(vals[k].path, raws[i].path, plen) == 0 && vals[k].path[plen] == '.') {
                if (empty)
                    goto next; /* a section whose keys are all commented out */
                snprintf(err, errlen, "config: %s: expected a mapping of keys, got a value (%s line %d)", raws[i].path,
                         file_name, raws[i].line);
                return -1;
            }
        }
        snprintf(err, errlen, "config: %s: unknown key (%s line %d); see the configuration reference in README.md",
                 raws[i].path, file_name, raws[i].line);
        return -1;
    next:;
    }
    return 0;
}

int rt_config_override(const char *path, const char *value, char *err, size_t errlen)
{
    for (size_t k = 0; k < nvals; k++) {
        if (strcmp(vals[k].path, path) == 0) {
            vals[k].origin = "command line";
            vals[k].line = 0;
            return assign_text(&vals[k], value, err, errlen);
        }
    }
    snprintf(err, errlen, "config: %s: unknown key", path);
    return -1;
}

const rt_cfg_value_t *rt_cfg(const char *path)
{
    for (size_t k = 0; k < nvals; k++)
        if (strcmp(vals[k].path, path) == 0)
            return &vals[k];
    return NULL;
}

rt_limits_t rt_lim;

void rt_config_freeze(void)
{
    rt_lim.max_queue_bytes = (size_t)rt_cfg_int("limits.max_queue_bytes");
    rt_lim.max_topics = (size_t)rt_cfg_int("limits.max_topics");
    rt_lim.max_message_bytes = (size_t)rt_cfg_int("limits.max_message_bytes");
    rt_lim.connections_per_ip = (double)rt_cfg_int("limits.connections_per_ip");
    rt_lim.publish_per_connection = (double)rt_cfg_int("limits.publish_per_connection");
    rt_lim.publish_per_subject = (double)rt_cfg_int("limits.publish_per_subject");
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
