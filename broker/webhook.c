/*
 * Webhooks, the events: what happened (a topic occupied or vacated, a presence join or leave, a message published)
 * becomes one JSON body per endpoint that wants it, handed to the carrier: the in-process queue (webhook_send.c) on
 * the memory bus, the JetStream work queue (webhook_nats.c) on NATS, which a node's sender then drains. Never blocks
 * the caller: a full queue drops, counts and logs.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "presence.h"
#include "text.h"
#include "topic.h"
#include "webhook.h"

static int nats_carrier;
static unsigned wanted; /* union of the endpoints' event bits */
static atomic_ulong next_event, m_events[RT_WH_NTYPES];

int rt_webhook_init(char *err, size_t errlen)
{
    if (rt_wh_config(err, errlen) != 0) {
        rt_wh_config_free();
        return -1;
    }
    for (size_t i = 0; i < rt_wh_neps; i++)
        wanted |= rt_wh_eps[i].events;
    nats_carrier = wanted && strcmp(rt_cfg_str("bus"), "nats") == 0; /* set before any worker runs */
    if (nats_carrier && (rt_webhook_wants(RT_WH_OCCUPIED) || rt_webhook_wants(RT_WH_VACATED)))
        rt_wh_occ_set_cluster();
    return 0;
}

int rt_webhook_wants(int type) { return (wanted >> type) & 1; }

int rt_webhook_start(char *err, size_t errlen)
{
    if (wanted == 0)
        return 0;
    return nats_carrier ? rt_wh_nats_start(err, errlen) : 0;
}

void rt_webhook_stop(void)
{
    if (nats_carrier)
        rt_wh_nats_stop();
    rt_wh_send_free(); /* hands the carrier's messages back (nak) */
    if (nats_carrier)
        rt_wh_nats_release();
    rt_wh_occ_free();
    rt_wh_config_free();
    wanted = 0;
}

void rt_webhook_tick(void)
{
    if (wanted == 0)
        return;
    rt_wh_occ_tick();
    rt_wh_send_tick();
}

void rt_webhook_worker_shutdown(void)
{
    if (wanted)
        rt_wh_send_shutdown();
}

static int topic_wanted(const rt_wh_endpoint_t *e, rt_str_t topic)
{
    if (e->ntopics == 0)
        return 1;
    for (size_t k = 0; k < e->ntopics; k++)
        if (rt_topic_match(rt_cstr(e->topics[k]), topic))
            return 1;
    return 0;
}

void rt_wh_emit(int type, rt_str_t topic, const char *id, rt_str_t members)
{
    char idbuf[64];
    if (id == NULL) {
        snprintf(idbuf, sizeof(idbuf), "%s-%llx-%lx", rt_presence_node(), (unsigned long long)rt_wall_ms(),
                 (unsigned long)atomic_fetch_add(&next_event, 1));
        id = idbuf;
    }
    atomic_fetch_add(&m_events[type], 1);
    rt_buf_t body = {0};
    for (size_t i = 0; i < rt_wh_neps; i++) {
        const rt_wh_endpoint_t *e = &rt_wh_eps[i];
        if (!((e->events >> type) & 1) || !topic_wanted(e, topic))
            continue;
        if (body.len == 0) {
            rt_buf_appendc(&body, "{\"id\":");
            rt_json_append_string(&body, rt_cstr(id));
            rt_buf_printf(&body, ",\"type\":\"%s\",\"time\":%llu,\"topic\":", rt_wh_type_names[type],
                          (unsigned long long)rt_wall_ms());
            rt_json_append_string(&body, topic);
            rt_buf_appendc(&body, ",\"node\":");
            rt_json_append_string(&body, rt_cstr(rt_presence_node()));
            rt_buf_appends(&body, members);
            rt_buf_appendc(&body, "}");
        }
        if (nats_carrier) {
            rt_wh_nats_publish(e, (int)i, topic, id, rt_str(body.base, body.len));
            continue;
        }
        rt_wh_delivery_t *d = rt_calloc(1, sizeof(*d));
        d->ep = (int)i;
        d->topic = rt_strndup(topic);
        d->id = rt_strndup(rt_cstr(id));
        rt_buf_append(&d->body, body.base, body.len);
        d->t0 = rt_now_ms();
        rt_wh_submit(d);
    }
    rt_buf_free(&body);
}

void rt_webhook_presence(int join, rt_str_t topic, rt_str_t user, rt_str_t client, rt_str_t info)
{
    int type = join ? RT_WH_JOIN : RT_WH_LEAVE;
    if (!rt_webhook_wants(type))
        return;
    rt_buf_t m = {0};
    rt_buf_appendc(&m, ",\"user\":");
    if (user.len)
        rt_json_append_string(&m, user);
    else
        rt_buf_appendc(&m, "null");
    rt_buf_appendc(&m, ",\"client\":");
    rt_json_append_string(&m, client);
    rt_buf_appendc(&m, ",\"info\":");
    if (info.len)
        rt_buf_appends(&m, info);
    else
        rt_buf_appendc(&m, "null");
    rt_wh_emit(type, topic, NULL, rt_str(m.base, m.len));
    rt_buf_free(&m);
}

/* ---------- message.published ---------- */

typedef struct pub_wrap {
    rt_msg_t *msg;
    rt_publish_cb cb;
    void *ctx;
} pub_wrap_t;

static void on_published(void *arg, int err, rt_str_t id)
{
    pub_wrap_t *w = arg;
    rt_msg_t *m = w->msg;
    if (err == RT_OK && id.len) {
        rt_buf_t b = {0};
        rt_buf_appendc(&b, ",\"message_id\":");
        rt_json_append_string(&b, id);
        rt_msg_append_event_data(&b, m);
        char eid[RT_ID_MAX + 8];
        snprintf(eid, sizeof(eid), "msg-%.*s", (int)id.len, id.base); /* the same for a repeated Idempotency-Key */
        rt_wh_emit(RT_WH_PUBLISHED, m->topic, eid, rt_str(b.base, b.len));
        rt_buf_free(&b);
    }
    rt_msg_unref(m);
    w->cb(w->ctx, err, id);
    free(w);
}

void rt_webhook_bus_publish(rt_msg_t *msg, rt_str_t key, rt_publish_cb cb, void *ctx)
{
    if (!rt_webhook_wants(RT_WH_PUBLISHED)) {
        rt_bus->ops->publish(rt_bus, msg, key, cb, ctx);
        return;
    }
    pub_wrap_t *w = rt_malloc(sizeof(*w));
    w->msg = rt_msg_ref(msg), w->cb = cb, w->ctx = ctx;
    rt_bus->ops->publish(rt_bus, msg, key, on_published, w);
}

/* ---------- metrics ---------- */

void rt_webhook_metrics(rt_buf_t *b)
{
    if (rt_wh_neps == 0)
        return;
    rt_buf_appendc(b, "# HELP rtbroker_webhook_events_total Events seen that some webhook endpoint wants, by type.\n"
                      "# TYPE rtbroker_webhook_events_total counter\n");
    for (int t = 0; t < RT_WH_NTYPES; t++)
        rt_buf_printf(b, "rtbroker_webhook_events_total{type=\"%s\"} %lu\n", rt_wh_type_names[t],
                      atomic_load(&m_events[t]));
    rt_wh_send_metrics(b);
    if (nats_carrier)
        rt_wh_nats_metrics(b);
}
