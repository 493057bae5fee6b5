/* Topic grammar, NATS-style wildcard matching and coverage, and message ids (EPOCH:SEQ). */
#ifndef RT_TOPIC_H
#define RT_TOPIC_H

#include "rt.h"

#define RT_TOPIC_MAX 255
#define RT_EPOCH_MAX 32
#define RT_ID_MAX (RT_EPOCH_MAX + 1 + 20)

/* RT_OK when t is a valid topic (or a pattern, when wildcards are allowed); else RT_ETOPIC.
 * *is_pattern (may be NULL) tells whether it holds a wildcard. */
int rt_topic_check(rt_str_t t, int allow_wildcards, int *is_pattern);
/* Whether the exact topic matches the pattern (both valid). */
int rt_topic_match(rt_str_t pattern, rt_str_t topic);
/* Whether every topic the pattern can match is matched by grant (both valid). */
int rt_topic_covers(rt_str_t grant, rt_str_t pattern);

typedef struct rt_id {
    rt_str_t epoch;
    uint64_t seq;
} rt_id_t;
/* Parses "EPOCH:SEQ" (EPOCH [A-Za-z0-9_-]{1,32}, SEQ decimal); RT_EID when malformed. */
int rt_id_parse(rt_str_t s, rt_id_t *out);
/* Writes "EPOCH:SEQ" into buf (RT_ID_MAX + 1 bytes); returns the length. */
size_t rt_id_format(char *buf, rt_str_t epoch, uint64_t seq);

#endif
