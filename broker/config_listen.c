/*
 * The entries of `listen` as YAML nodes, for config.c: an address, or a mapping
 * {address, tls: {cert, key}}; the same nodes whether they come from the file or from a
 * flow list in RTB_LISTEN / --listen. Checks their shape only: addresses are config.c's,
 * the files tls.c's. Errors name listen[i].… and the line or the variable.
 */
#include <stdio.h>
#include <stdlib.h>

#include "config_listen.h"

void rt_listen_tls_free(rt_listen_tls_t *t)
{
    if (t == NULL)
        return;
    free(t->cert);
    free(t->key);
    free(t);
}

/* "config: listen[1].tls.cert: MSG (FILE line N)", or "config: listen[1].tls.cert (RTB_LISTEN): MSG" */
void rt_listen_verr(char *err, size_t errlen, size_t i, const char *field, const char *origin, const char *file, int line,
                    const char *fmt, va_list ap)
{
    char msg[600], key[80];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    snprintf(key, sizeof(key), "listen[%zu]%s%s", i, field[0] ? "." : "", field);
    if (strcmp(origin, "file") == 0 && line > 0)
        snprintf(err, errlen, "config: %s: %s (%s line %d)", key, msg, file, line);
    else if (strcmp(origin, "file") == 0)
        snprintf(err, errlen, "config: %s: %s", key, msg);
    else
        snprintf(err, errlen, "config: %s (%s): %s", key, origin, msg);
}

/* Where errors are told: origin "file" (with the file name and lines) or the variable. */
typedef struct where {
    const char *origin, *file;
} where_t;

static void entry_err(char *err, size_t errlen, size_t i, const char *field, const where_t *w, const yaml_node_t *at,
                      const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void entry_err(char *err, size_t errlen, size_t i, const char *field, const where_t *w, const yaml_node_t *at,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_listen_verr(err, errlen, i, field, w->origin, w->file, (int)at->start_mark.line + 1, fmt, ap);
    va_end(ap);
}

static const char *scalar_of(const yaml_node_t *n)
{
    return n != NULL && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The values of a mapping's known keys (names, NULL-terminated) into vals; an unknown or repeated key is an error. */
static int entry_keys(yaml_document_t *doc, yaml_node_t *map, const char *const *names, yaml_node_t **vals, size_t i,
                      const char *prefix, const where_t *w, char *err, size_t errlen)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        const char *name = scalar_of(k);
        size_t j = 0;
        while (name && names[j] && strcmp(names[j], name) != 0)
            j++;
        char field[80];
        snprintf(field, sizeof(field), "%s%s", prefix, name ? name : "?");
        if (name == NULL || names[j] == NULL) {
            entry_err(err, errlen, i, field, w, k, "unknown key (expected %s%s%s)", names[0], names[1] ? " and " : "",
                      names[1] ? names[1] : "");
            return -1;
        }
        if (vals[j] != NULL) {
            entry_err(err, errlen, i, field, w, k, "key given twice");
            return -1;
        }
        vals[j] = yaml_document_get_node(doc, p->value);
    }
    return 0;
}

/* One entry: an address, or a mapping {address, tls: {cert, key}}. Sets *addr (and *tls for a TLS entry). */
static int listen_entry(yaml_document_t *doc, yaml_node_t *n, size_t i, const where_t *w, char **addr,
                        rt_listen_tls_t **tls, char *err, size_t errlen)
{
    static const char *const entry_names[] = {"address", "tls", NULL}, *const tls_names[] = {"cert", "key", NULL};
    *addr = NULL, *tls = NULL;
    if (n->type == YAML_SCALAR_NODE) {
        *addr = rt_strndup(rt_str((char *)n->data.scalar.value, n->data.scalar.length));
        return 0;
    }
    if (n->type != YAML_MAPPING_NODE) {
        entry_err(err, errlen, i, "", w, n, "expected an address or a mapping {address: HOST:PORT, tls: {cert: FILE, key: FILE}}");
        return -1;
    }
    yaml_node_t *v[2] = {NULL, NULL}, *t[2] = {NULL, NULL};
    if (entry_keys(doc, n, entry_names, v, i, "", w, err, errlen) != 0)
        return -1;
    if (scalar_of(v[0]) == NULL || scalar_of(v[0])[0] == '\0') {
        entry_err(err, errlen, i, "address", w, v[0] ? v[0] : n, "%s", v[0] ? "expected HOST:PORT" : "missing (address: HOST:PORT)");
        return -1;
    }
    if (v[1] != NULL) {
        if (v[1]->type != YAML_MAPPING_NODE) {
            entry_err(err, errlen, i, "tls", w, v[1], "expected a mapping {cert: FILE, key: FILE}");
            return -1;
        }
        if (entry_keys(doc, v[1], tls_names, t, i, "tls.", w, err, errlen) != 0)
            return -1;
        for (int k = 0; k < 2; k++) {
            if (scalar_of(t[k]) == NULL || scalar_of(t[k])[0] == '\0') {
                entry_err(err, errlen, i, k ? "tls.key" : "tls.cert", w, t[k] ? t[k] : v[1], "%s",
                          k ? "missing: the PEM private key file of the certificate"
                            : "missing: the PEM certificate file (the server certificate first, then its chain)");
                return -1;
            }
        }
        *tls = rt_calloc(1, sizeof(**tls));
        (*tls)->cert = rt_strndup(rt_cstr(scalar_of(t[0])));
        (*tls)->key = rt_strndup(rt_cstr(scalar_of(t[1])));
        if (strcmp(w->origin, "file") == 0)
            (*tls)->cert_line = (int)t[0]->start_mark.line + 1, (*tls)->key_line = (int)t[1]->start_mark.line + 1;
    }
    *addr = rt_strndup(rt_cstr(scalar_of(v[0])));
    return 0;
}

/* listen as a YAML node: one entry or a sequence of them, into items and tls (n of each; freed by the caller even on
 * error). */
int rt_listen_entries(yaml_document_t *doc, yaml_node_t *n, const char *origin, const char *file, char ***items,
                      rt_listen_tls_t ***tls, size_t *count, char *err, size_t errlen)
{
    where_t w = {origin, file};
    int seq = n->type == YAML_SEQUENCE_NODE;
    size_t cap = seq ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start) : 1;
    *items = rt_calloc(cap ? cap : 1, sizeof(char *));
    *tls = rt_calloc(cap ? cap : 1, sizeof(rt_listen_tls_t *));
    *count = 0;
    for (size_t i = 0; i < cap; i++) {
        yaml_node_t *e = seq ? yaml_document_get_node(doc, n->data.sequence.items.start[i]) : n;
        if (listen_entry(doc, e, i, &w, &(*items)[i], &(*tls)[i], err, errlen) != 0)
            return -1;
        *count = i + 1;
    }
    return 0;
}

void rt_listen_entries_free(char **items, rt_listen_tls_t **tls, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(items[i]);
        rt_listen_tls_free(tls[i]);
    }
    free(items);
    free(tls);
}
