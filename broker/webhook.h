/* Webhooks (webhooks.*): the broker tells the application what happened, asynchronously, signed, at least once. */
#ifndef RT_WEBHOOK_H
#define RT_WEBHOOK_H

#include "bus.h"
#include "httpclient.h"
#include "rt.h"

enum { RT_WH_OCCUPIED, RT_WH_VACATED, RT_WH_JOIN, RT_WH_LEAVE, RT_WH_PUBLISHED, RT_WH_NTYPES };

/* Main thread, once the configuration is loaded: checks webhooks.* (errors name the entry, key and line). */
int rt_webhook_init(char *err, size_t errlen);
/* Main thread, once the bus and the workers run / after the workers stopped: the carrier and the sender. */
int rt_webhook_start(char *err, size_t errlen);
void rt_webhook_stop(void);
/* Whether an endpoint listens to this event type. */
int rt_webhook_wants(int type);
void rt_webhook_metrics(rt_buf_t *b);

/* Any thread: a presence member joined or left a topic on this node (info: JSON object, or empty). */
void rt_webhook_presence(int join, rt_str_t topic, rt_str_t user, rt_str_t client, rt_str_t info);
/* rt_bus->ops->publish, and message.published once the bus accepted the message. */
void rt_webhook_bus_publish(rt_msg_t *msg, rt_str_t key, rt_publish_cb cb, void *ctx);
/* Worker threads (hub.c): a subscription to a topic or pattern was added or removed on this node. */
void rt_webhook_sub_added(rt_str_t pattern);
void rt_webhook_sub_removed(rt_str_t pattern);
/* Worker 0, four times a second: vacated debounce, retries due. */
void rt_webhook_tick(void);
/* Worker 0 at shutdown: calls in flight are dropped (they are redelivered or lost with the process). */
void rt_webhook_worker_shutdown(void);

/* ---------- between the webhook files ---------- */

typedef struct rt_wh_endpoint {
    char *url;
    rt_httpc_target_t target;
    unsigned events; /* bit per type */
    char **topics;   /* patterns; none: every topic */
    size_t ntopics;
    unsigned char *secret;
    size_t secret_len;
    int max_attempts;
} rt_wh_endpoint_t;

typedef struct rt_wh_settings {
    uint64_t vacated_delay_ms, timeout_ms, retry_ms, retry_max_ms;
    size_t max_queue, max_in_flight;
} rt_wh_settings_t;

extern rt_wh_endpoint_t *rt_wh_eps;
extern size_t rt_wh_neps;
extern rt_wh_settings_t rt_wh_set;
extern const char *const rt_wh_type_names[RT_WH_NTYPES];

/* One event for one endpoint. */
typedef struct rt_wh_delivery {
    struct rt_wh_delivery *next;
    int ep;
    char *topic, *id;
    rt_buf_t body;
    int attempts;  /* made so far (a carrier that retries itself sets it before the sender's one attempt) */
    uint64_t t0;   /* when it was queued (latency) */
    /* the NATS carrier: the sender makes one attempt and hands the outcome here (the carrier frees d) */
    void (*settle)(struct rt_wh_delivery *d, int delivered);
    void *carrier;
} rt_wh_delivery_t;

/* webhook_config.c */
int rt_wh_config(char *err, size_t errlen);
void rt_wh_config_free(void);
/* webhook_send.c: any thread; takes d. 0, or -1 when the queue is full (d is freed, counted and logged). */
int rt_wh_submit(rt_wh_delivery_t *d);
void rt_wh_delivery_free(rt_wh_delivery_t *d);
void rt_wh_send_metrics(rt_buf_t *b);
/* A carrier's failed attempt: retried later (failed 0) or given up (failed 1). */
void rt_wh_count(int ep, int failed);
void rt_wh_send_tick(void);
void rt_wh_send_shutdown(void);
void rt_wh_send_free(void);
/* HMAC-SHA256 hex of t "." body into hex (65 bytes). */
void rt_wh_sign(const rt_wh_endpoint_t *e, long t, rt_str_t body, char *hex);
/* webhook_occupancy.c (and webhook_occ_nats.c: this node's count of a topic moved by delta, bus: nats) */
void rt_wh_occ_nats_local(rt_str_t topic, int delta);
void rt_wh_occ_set_cluster(void);
void rt_wh_occ_tick(void);
void rt_wh_occ_free(void);
/* webhook.c: an event of type on topic with its type-specific members (JSON text after a comma, or empty) to every
 * endpoint that wants it. id: the event's id, or NULL for a fresh one. */
void rt_wh_emit(int type, rt_str_t topic, const char *id, rt_str_t members);
/* webhook_nats.c: the JetStream carrier (bus: nats) */
int rt_wh_nats_start(char *err, size_t errlen);
int rt_wh_nats_publish(const rt_wh_endpoint_t *e, int ep, rt_str_t topic, const char *id, rt_str_t body);
void rt_wh_nats_stop(void);    /* its threads */
void rt_wh_nats_release(void); /* then, once the sender let go of its messages */
void rt_wh_nats_metrics(rt_buf_t *b);

#endif
