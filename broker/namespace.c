/*
 * Topic namespaces: the `topics:` list of the config file, checked entry by entry (every refusal names the entry's
 * line), and the lookup of a topic's namespace (first match wins). The table is set once at start and never changes
 * while workers run, so lookups take no lock. Knows nothing of transports or buses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "namespace.h"

#define MAX_NS 256

static rt_ns_t *table, *parsed;
static size_t ntable, nparsed;

static const char *scalar(yaml_node_t *n) { return n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL; }

static int fail(char *err, size_t errlen, const char *file, yaml_node_t *at, const char *fmt, const char *what)
{
    char msg[300];
    snprintf(msg, sizeof(msg), fmt, what);
    snprintf(err, errlen, "config: topics: %s (%s line %lu)", msg, file, (unsigned long)at->start_mark.line + 1);
    return -1;
}

static int boolean(const char *s, int *out)
{
    if (s && (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")))
        return *out = 1, 0;
    if (s && (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")))
        return *out = 0, 0;
    return -1;
}

static int history(yaml_document_t *doc, yaml_node_t *m, rt_ns_t *ns, const char *file, char *err, size_t errlen)
{
    if (m->type != YAML_MAPPING_NODE)
        return fail(err, errlen, file, m, "%s", "history is a mapping {max_messages, max_age}");
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(k), *val = scalar(v);
        int64_t x;
        char *end;
        if (key && !strcmp(key, "max_messages")) {
            long long n = val ? strtoll(val, &end, 10) : 0;
            if (!val || *end || n < 1 || n > 10000000)
                return fail(err, errlen, file, v, "history.max_messages: \"%s\" is not an integer from 1 to 10000000", val ? val : "");
            ns->max_messages = (size_t)n;
        } else if (key && !strcmp(key, "max_age")) {
            if (!val || rt_parse_duration_ms(val, &x) != 0 || x < 1000)
                return fail(err, errlen, file, v, "history.max_age: \"%s\" is not a duration of at least 1s", val ? val : "");
            ns->max_age_ms = (uint64_t)x;
        } else {
            return fail(err, errlen, file, k, "history: unknown key \"%s\" (max_messages, max_age)", key ? key : "?");
        }
    }
    return 0;
}

static int entry(yaml_document_t *doc, yaml_node_t *m, rt_ns_t *ns, const char *file, char *err, size_t errlen)
{
    ns->presence = 1;
    ns->line = (int)m->start_mark.line + 1;
    if (m->type != YAML_MAPPING_NODE)
        return fail(err, errlen, file, m, "%s", "each entry is a mapping {pattern, history, presence, publish, recover}");
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar(k), *val = scalar(v);
        if (key && !strcmp(key, "history")) {
            if (history(doc, v, ns, file, err, errlen) != 0)
                return -1;
        } else if (key && !strcmp(key, "pattern")) {
            if (!val || rt_topic_check(rt_cstr(val), 1, NULL) != RT_OK)
                return fail(err, errlen, file, v, "pattern: \"%s\" is not a topic or pattern (chat.>, prices.*)", val ? val : "");
            snprintf(ns->pattern, sizeof(ns->pattern), "%s", val);
        } else if (key && !strcmp(key, "presence")) {
            if (boolean(val, &ns->presence) != 0)
                return fail(err, errlen, file, v, "presence: \"%s\" is not true or false", val ? val : "");
        } else if (key && !strcmp(key, "publish")) {
            if (!val || (strcmp(val, "clients") && strcmp(val, "server")))
                return fail(err, errlen, file, v, "publish: \"%s\" is not clients or server", val ? val : "");
            ns->publish_server = !strcmp(val, "server");
        } else if (key && !strcmp(key, "recover")) {
            if (!val || (strcmp(val, "stream") && strcmp(val, "latest") && strcmp(val, "none")))
                return fail(err, errlen, file, v, "recover: \"%s\" is not stream, latest or none", val ? val : "");
            ns->recover = !strcmp(val, "latest") ? RT_RECOVER_LATEST : !strcmp(val, "none") ? RT_RECOVER_NONE : RT_RECOVER_STREAM;
        } else {
            return fail(err, errlen, file, k, "unknown key \"%s\" (pattern, history, presence, publish, recover)", key ? key : "?");
        }
    }
    if (!ns->pattern[0])
        return fail(err, errlen, file, m, "%s", "an entry needs a pattern");
    return 0;
}

int rt_ns_parse(yaml_document_t *doc, yaml_node_t *seq, const char *file, char *err, size_t errlen)
{
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n > MAX_NS)
        return fail(err, errlen, file, seq, "at most %s entries", "256");
    rt_ns_t *t = rt_calloc(n + 1, sizeof(*t));
    for (size_t i = 0; i < n; i++)
        if (entry(doc, yaml_document_get_node(doc, seq->data.sequence.items.start[i]), &t[i], file, err, errlen) != 0) {
            free(t);
            return -1;
        }
    if (parsed != table)
        free(parsed);
    parsed = t, nparsed = n;
    return 0;
}

void rt_ns_apply(void)
{
    table = parsed, ntable = nparsed;
}

const rt_ns_t *rt_ns_of(rt_str_t topic)
{
    for (size_t i = 0; i < ntable; i++)
        if (rt_topic_match(rt_cstr(table[i].pattern), topic))
            return &table[i];
    return NULL;
}

void rt_ns_history(rt_str_t topic, size_t *max_messages, uint64_t *max_age_ms)
{
    const rt_ns_t *ns = rt_ns_of(topic);
    if (ns && ns->max_messages)
        *max_messages = ns->max_messages;
    if (ns && ns->max_age_ms)
        *max_age_ms = ns->max_age_ms;
}

void rt_ns_stream_limits(int64_t *max_messages, int64_t *max_age_ms)
{
    for (size_t i = 0; i < ntable; i++) {
        if ((int64_t)table[i].max_messages > *max_messages)
            *max_messages = (int64_t)table[i].max_messages;
        if ((int64_t)table[i].max_age_ms > *max_age_ms)
            *max_age_ms = (int64_t)table[i].max_age_ms;
    }
}

size_t rt_ns_count(void) { return ntable; }
const rt_ns_t *rt_ns_at(size_t i) { return i < ntable ? &table[i] : NULL; }
