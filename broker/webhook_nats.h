/* The NATS bus hands its connection to the webhooks' JetStream carrier (webhook_nats.c). */
#ifndef RT_WEBHOOK_NATS_H
#define RT_WEBHOOK_NATS_H

#include <nats/nats.h>

void rt_wh_nats_attach(natsConnection *nc);

#endif
