/* The NATS bus hands its connection to the webhooks' JetStream carrier (webhook_nats.c). */
#ifndef RT_WEBHOOK_NATS_H
#define RT_WEBHOOK_NATS_H

#include <nats/nats.h>

void rt_wh_nats_attach(natsConnection *nc);
/* webhook_occ_nats.c: topic.occupied/vacated from every node's subscriptions, in a key-value bucket. */
void rt_wh_occ_nats_start(jsCtx *js, const char *prefix);
void rt_wh_occ_nats_stop(void);

#endif
