/* What a message from NATS becomes in the broker, apart from any connection (nats_decode.c), so that the fuzz
 * target reads it exactly as the bus does. */
#ifndef RT_NATS_DECODE_H
#define RT_NATS_DECODE_H

#include <nats/nats.h>

#include "message.h"

/* The message m carries, whoever published it: its subject must be "<prefix><sep><topic>" (sep "." on the stream,
 * "_eph." for ephemeral messages) with a topic a client could publish to; an Rt-Event header that is not an event
 * name (publish.c's rule) is dropped, as POST /pub would refuse it. NULL when it is not a message
 * of ours (logged at debug). The id is the caller's to set. */
rt_msg_t *rt_nats_decode(natsMsg *m, const char *prefix, const char *sep);

#endif
