/* Presence across the cluster through a NATS key-value bucket (presence_nats.c), started by the NATS bus. */
#ifndef RT_PRESENCE_NATS_H
#define RT_PRESENCE_NATS_H

#include <nats/nats.h>

#include "rt.h"

void rt_presence_nats_start(natsConnection *nc, jsCtx *js, const char *stream);
/* Stops the thread after writing this node's last changes (its members' leaves). */
void rt_presence_nats_stop(void);
/* An entry of the bucket, as any node (or any NATS client) wrote it, age_ms old: key "n.<node>" (a heartbeat) or
 * "m.<node>.<topic>" (that node's member list of the topic). Exposed for the fuzz target. */
void rt_presence_nats_entry(const char *key, rt_str_t value, uint64_t age_ms);
/* After the connection is closed. */
void rt_presence_nats_release(void);

#endif
