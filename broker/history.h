/* Retained messages per topic (history.max_messages, history.max_age) and replay with gap detection.
 * Thread-safe (one lock). The memory bus fills it on publish (the NATS bus reads JetStream on demand instead). */
#ifndef RT_HISTORY_H
#define RT_HISTORY_H

#include "bus.h"

typedef struct rt_history rt_history_t;

rt_history_t *rt_history_new(void);
/* Sets the limits (after the config is loaded): per topic, and for the whole history (oldest evicted first). */
void rt_history_configure(rt_history_t *h, size_t max_messages, uint64_t max_age_ms, size_t max_bytes, size_t max_topics);
/* Retains msg (takes a reference). SEQs arrive in increasing order. */
void rt_history_add(rt_history_t *h, rt_msg_t *msg);
/* Replay for r (see rt_replay_t) within the history named epoch. When future_ok, an id of this epoch beyond
 * the last retained SEQ is taken as "already seen" (another node may be ahead of this one), not as a gap. */
void rt_history_replay(rt_history_t *h, rt_str_t epoch, int future_ok, rt_replay_t *r);
/* The last SEQ retained (0 when none yet). */
uint64_t rt_history_head(rt_history_t *h);
/* Drops every retained message of one topic (their SEQs count as evicted: a resume from before gets a gap);
 * returns how many. */
size_t rt_history_forget(rt_history_t *h, rt_str_t topic);
/* Forget everything (the history was lost: a new epoch). */
void rt_history_clear(rt_history_t *h);
void rt_history_tick(rt_history_t *h);
/* Prometheus lines: retained topics, messages and bytes, the caps, evictions by cause, cached encodings. */
void rt_history_metrics(rt_history_t *h, rt_buf_t *out);

#endif
