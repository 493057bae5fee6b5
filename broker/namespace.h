/* Topic namespaces (config `topics:`): per family of topics, its history, presence, who may publish and what a new
 * subscriber is sent first. First match wins; a topic no entry matches has the global settings. */
#ifndef RT_NAMESPACE_H
#define RT_NAMESPACE_H

#include <yaml.h>

#include "rt.h"
#include "topic.h"

enum { RT_RECOVER_STREAM = 0, RT_RECOVER_LATEST = 1, RT_RECOVER_NONE = 2 };

typedef struct rt_ns {
    char pattern[RT_TOPIC_MAX + 1];
    size_t max_messages;  /* 0: history.max_messages */
    uint64_t max_age_ms;  /* 0: history.max_age */
    int presence;         /* 0: joins are refused */
    int publish_server;   /* 1: only the server API (or a POST /pub carrying an API key) publishes */
    int recover;          /* RT_RECOVER_* */
    int line;
} rt_ns_t;

/* config.c: the `topics` sequence of the file (a new table, used once rt_ns_apply runs); 0 or -1 with err. */
int rt_ns_parse(yaml_document_t *doc, yaml_node_t *seq, const char *file, char *err, size_t errlen);
/* At start, after the config is loaded: the parsed table becomes the one in use (a SIGHUP does not change it). */
void rt_ns_apply(void);
/* The namespace of an exact topic, or NULL (global settings). Any thread. */
const rt_ns_t *rt_ns_of(rt_str_t topic);
/* History limits of a topic (the namespace's or the global ones given). */
void rt_ns_history(rt_str_t topic, size_t *max_messages, uint64_t *max_age_ms);
/* The stream-wide limits on the NATS bus: the global ones raised to the largest of any namespace. */
void rt_ns_stream_limits(int64_t *max_messages, int64_t *max_age_ms);
size_t rt_ns_count(void);
const rt_ns_t *rt_ns_at(size_t i);

#endif
