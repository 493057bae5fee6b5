/* Presence across the cluster through a NATS key-value bucket (presence_nats.c), started by the NATS bus. */
#ifndef RT_PRESENCE_NATS_H
#define RT_PRESENCE_NATS_H

#include <nats/nats.h>

void rt_presence_nats_start(natsConnection *nc, jsCtx *js, const char *stream);
/* Stops the thread after writing this node's last changes (its members' leaves). */
void rt_presence_nats_stop(void);
/* After the connection is closed. */
void rt_presence_nats_release(void);

#endif
