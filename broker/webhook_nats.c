/* Webhooks over NATS JetStream: placeholder until the carrier lands (bus: nats sends from the node that saw it). */
#include "webhook.h"

int rt_wh_nats_start(char *err, size_t errlen)
{
    (void)err, (void)errlen;
    return 0;
}
int rt_wh_nats_publish(const rt_wh_endpoint_t *e, int ep, rt_str_t topic, const char *id, rt_str_t body)
{
    (void)e, (void)ep, (void)topic, (void)id, (void)body;
    return 0;
}
void rt_wh_nats_stop(void) {}
void rt_wh_nats_metrics(rt_buf_t *b) { (void)b; }
