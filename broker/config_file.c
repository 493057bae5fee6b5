/*
 * The config file, read: libyaml turns it into a tree and every leaf becomes a raw entry (path, values, line) that
 * config.c matches against its key table. A list of mappings (webhooks.endpoints) becomes one raw entry for the list
 * and one per key of each entry ("webhooks.endpoints[0].url"), so every value keeps its own line for errors.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config_file.h"
#include "config_listen.h"
#include "namespace.h"

rt_cfg_file_t rt_cfgf = {.name = "(none)"};

raw_t *rt_cfg_raw(const char *path)
{
    for (size_t i = 0; i < rt_cfgf.nraws; i++)
        if (strcmp(rt_cfgf.raws[i].path, path) == 0)
            return &rt_cfgf.raws[i];
    return NULL;
}

#define MAX_KEYS 1024 /* far above any real file; aliases can make a small file name millions of keys */
static size_t walked;

static int walk(yaml_document_t *doc, yaml_node_t *node, const char *prefix, int *lines, int depth, char *err,
                size_t errlen);

static int has_mapping(yaml_document_t *doc, yaml_node_t *seq)
{
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top; it++)
        if (yaml_document_get_node(doc, *it)->type == YAML_MAPPING_NODE)
            return 1;
    return 0;
}

/* A list of mappings: the list's raw entry (the last one added) gets each entry's line, and each entry's keys
 * become raw entries under "path[i]". */
static int walk_maps(yaml_document_t *doc, yaml_node_t *seq, const char *path, int *lines, int depth, char *err,
                     size_t errlen)
{
    size_t ri = rt_cfgf.nraws - 1, cnt = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    raw_t *r = &rt_cfgf.raws[ri];
    r->is_seq = r->is_maps = 1;
    r->items = rt_calloc(cnt ? cnt : 1, sizeof(char *));
    r->item_lines = rt_calloc(cnt ? cnt : 1, sizeof(int));
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *item = yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
        r = &rt_cfgf.raws[ri]; /* walk moves the table */
        r->items[i] = rt_strndup(RT_STRLIT(""));
        r->item_lines[i] = (int)item->start_mark.line + 1;
        r->n = i + 1;
        char entry[280];
        snprintf(entry, sizeof(entry), "%s[%zu]", path, i);
        if (item->type != YAML_MAPPING_NODE) {
            snprintf(err, errlen, "config: %s: each entry of this list is a mapping of keys (key: value) (%s line %lu)",
                     entry, rt_cfgf.name, (unsigned long)item->start_mark.line + 1);
            return -1;
        }
        if (walk(doc, item, entry, lines, depth + 1, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* Flattens the YAML tree into rt_cfgf.raws; lines holds the lines of the keys of prefix (depth of them). */
static int walk(yaml_document_t *doc, yaml_node_t *node, const char *prefix, int *lines, int depth, char *err,
                size_t errlen)
{
    if (node->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key), *val = yaml_document_get_node(doc, p->value);
            if (k->type != YAML_SCALAR_NODE) {
                snprintf(err, errlen, "config: %s: keys must be plain names (%s line %lu)", prefix[0] ? prefix : "(top)",
                         rt_cfgf.name, (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            char path[256];
            int plen = snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", (char *)k->data.scalar.value);
            if (plen < 0 || (size_t)plen >= sizeof(path)) { /* this also bounds the nesting, and so the recursion */
                snprintf(err, errlen, "config: %.60s...: the key is longer than 255 bytes (%s line %lu)", path, rt_cfgf.name,
                         (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            if (++walked > MAX_KEYS) {
                snprintf(err, errlen, "config: more than %d keys (%s line %lu); an alias (*name) repeats all it points to",
                         MAX_KEYS, rt_cfgf.name, (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            if (rt_cfg_raw(path)) {
                snprintf(err, errlen, "config: %s: key given twice (%s line %lu)", path, rt_cfgf.name,
                         (unsigned long)k->start_mark.line + 1);
                return -1;
            }
            if (depth < 12)
                lines[depth] = (int)k->start_mark.line + 1;
            if (strcmp(path, "topics") == 0 && val->type == YAML_SEQUENCE_NODE) { /* namespaces: namespace.c */
                if (rt_ns_parse(doc, val, rt_cfgf.name, err, errlen) != 0)
                    return -1;
                continue;
            }
            int listen = strcmp(path, "listen") == 0 && val->type != YAML_SCALAR_NODE;
            if (val->type == YAML_MAPPING_NODE && !listen) {
                if (walk(doc, val, path, lines, depth + 1, err, errlen) != 0)
                    return -1;
                continue;
            }
            rt_cfgf.raws = rt_realloc(rt_cfgf.raws, (rt_cfgf.nraws + 1) * sizeof(*rt_cfgf.raws));
            raw_t *r = &rt_cfgf.raws[rt_cfgf.nraws++];
            memset(r, 0, sizeof(*r));
            memcpy(r->key_lines, lines, sizeof(r->key_lines));
            r->path = strdup(path);
            r->line = (int)val->start_mark.line + 1;
            if (listen) { /* entries may be mappings with tls */
                r->is_seq = val->type == YAML_SEQUENCE_NODE;
                if (rt_listen_entries(doc, val, "file", rt_cfgf.name, &r->items, &r->tls, &r->n, err, errlen) != 0)
                    return -1;
            } else if (val->type == YAML_SCALAR_NODE) {
                r->items = rt_malloc(sizeof(char *));
                r->items[0] = rt_strndup(rt_str((char *)val->data.scalar.value, val->data.scalar.length));
                r->n = 1;
            } else if (has_mapping(doc, val)) {
                if (walk_maps(doc, val, path, lines, depth, err, errlen) != 0)
                    return -1;
            } else {
                r->is_seq = 1;
                size_t cnt = (size_t)(val->data.sequence.items.top - val->data.sequence.items.start);
                r->items = rt_calloc(cnt ? cnt : 1, sizeof(char *));
                for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top; it++) {
                    yaml_node_t *item = yaml_document_get_node(doc, *it);
                    if (item->type != YAML_SCALAR_NODE) {
                        snprintf(err, errlen, "config: %s: list items must be plain values (%s line %lu)", path, rt_cfgf.name,
                                 (unsigned long)item->start_mark.line + 1);
                        return -1;
                    }
                    r->items[r->n++] = rt_strndup(rt_str((char *)item->data.scalar.value, item->data.scalar.length));
                }
            }
        }
        return 0;
    }
    snprintf(err, errlen, "config: the file must be a mapping of keys (%s line %lu)", rt_cfgf.name,
             (unsigned long)node->start_mark.line + 1);
    return -1;
}

int rt_cfg_file_parse(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "config: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(rt_cfgf.name, sizeof(rt_cfgf.name), "%s", path);
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
        int lines[12] = {0};
        if (root != NULL && !(root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0))
            rc = walk(&doc, root, "", lines, 0, err, errlen);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}

void rt_cfg_file_free(void)
{
    for (size_t i = 0; i < rt_cfgf.nraws; i++) {
        raw_t *r = &rt_cfgf.raws[i];
        for (size_t k = 0; k < r->n; k++) {
            free(r->items[k]);
            if (r->tls)
                rt_listen_tls_free(r->tls[k]);
        }
        free(r->items);
        free(r->tls);
        free(r->item_lines);
        free(r->path);
    }
    free(rt_cfgf.raws);
    rt_cfgf.raws = NULL, rt_cfgf.nraws = 0;
    strcpy(rt_cfgf.name, "(none)");
}

/* ---------- lists of mappings ---------- */

static int known_field(const char *fields, const char *name)
{
    size_t n = strlen(name);
    for (const char *f = fields; *f;) {
        size_t len = strcspn(f, ",");
        if (len == n && strncmp(f, name, n) == 0)
            return 1;
        f += len + (f[len] == ',');
    }
    return 0;
}

void rt_cfg_entries_free(rt_cfg_value_t *v)
{
    for (size_t i = 0; v->entries && i < v->nlist; i++) {
        rt_cfg_entry_t *e = &v->entries[i];
        for (size_t f = 0; f < e->nfields; f++) {
            for (size_t k = 0; k < e->fields[f].n; k++)
                free(e->fields[f].items[k]);
            free(e->fields[f].items);
            free(e->fields[f].name);
        }
        free(e->fields);
    }
    free(v->entries);
    v->entries = NULL;
}

int rt_cfg_file_maps(rt_cfg_value_t *v, char *err, size_t errlen)
{
    raw_t *r = rt_cfg_raw(v->path);
    v->origin = "default", v->line = 0;
    if (r == NULL)
        return 0;
    r->used = 1;
    v->origin = "file", v->line = r->line;
    if (!r->is_maps) {
        if (!r->is_seq && r->n == 1 && r->items[0][0] == '\0')
            return 0; /* "endpoints:" with every entry commented out */
        snprintf(err, errlen, "config: %s: expected a list of mappings (- %.*s: ...) (%s line %d)", v->path,
                 (int)strcspn(v->fields, ","), v->fields, rt_cfgf.name, r->line);
        return -1;
    }
    v->entries = rt_calloc(r->n ? r->n : 1, sizeof(*v->entries));
    v->nlist = r->n;
    rt_buf_t canon = {0}; /* for a SIGHUP's "changed" check */
    for (size_t i = 0; i < r->n; i++) {
        char prefix[280];
        size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "%s[%zu].", v->path, i);
        rt_cfg_entry_t *e = &v->entries[i];
        e->line = r->item_lines[i];
        for (size_t k = 0; k < rt_cfgf.nraws; k++) {
            raw_t *f = &rt_cfgf.raws[k];
            if (strncmp(f->path, prefix, plen) != 0)
                continue;
            f->used = 1;
            if (!known_field(v->fields, f->path + plen)) {
                snprintf(err, errlen, "config: %s: unknown key (%s line %d); an entry has %s", f->path, rt_cfgf.name,
                         f->line, v->fields);
                rt_buf_free(&canon);
                return -1;
            }
            e->fields = rt_realloc(e->fields, (e->nfields + 1) * sizeof(*e->fields));
            rt_cfg_field_t *d = &e->fields[e->nfields++];
            d->name = rt_strndup(rt_cstr(f->path + plen));
            d->items = rt_calloc(f->n ? f->n : 1, sizeof(char *));
            d->n = f->n, d->is_seq = f->is_seq, d->line = f->line;
            for (size_t j = 0; j < f->n; j++) {
                d->items[j] = rt_strndup(rt_cstr(f->items[j]));
                rt_buf_printf(&canon, "%zu.%s=%s;", i, d->name, f->items[j]);
            }
        }
    }
    rt_buf_append(&canon, "", 1);
    v->s = canon.base;
    return 0;
}

const rt_cfg_field_t *rt_cfg_entry_field(const rt_cfg_entry_t *e, const char *name)
{
    for (size_t f = 0; f < e->nfields; f++)
        if (strcmp(e->fields[f].name, name) == 0)
            return &e->fields[f];
    return NULL;
}

void rt_cfg_entry_error(const char *path, size_t i, const char *field, char *err, size_t errlen, const char *fmt, ...)
{
    const rt_cfg_value_t *v = rt_cfg(path);
    const rt_cfg_entry_t *e = v && i < v->nlist ? &v->entries[i] : NULL;
    const rt_cfg_field_t *f = e ? rt_cfg_entry_field(e, field) : NULL;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "config: %s[%zu].%s: %s (%s line %d)", path, i, field, msg, rt_cfgf.name,
             f ? f->line : e ? e->line : 0);
}
