/*
 * The webhooks.* keys, checked once at start: each endpoint's url (http:// or https://), events (known names), topics
 * (valid topics or patterns), secret (required; text, env:NAME or file:/path) and max_attempts (>= 1). Every refusal
 * names the entry, the key and the line. Owns the endpoint table; nothing here sends anything.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "topic.h"
#include "webhook.h"

#define PATH "webhooks.endpoints"
#define MAX_ENDPOINTS 8

rt_wh_endpoint_t *rt_wh_eps;
size_t rt_wh_neps;
rt_wh_settings_t rt_wh_set;
const char *const rt_wh_type_names[RT_WH_NTYPES] = {"topic.occupied", "topic.vacated", "presence.join", "presence.leave",
                                                    "message.published"};

/* The secret's text: inline, env:NAME or file:/path (as rt_cfg_secret reads a key). */
static int secret_of(size_t i, const char *s, rt_wh_endpoint_t *e, char *err, size_t errlen)
{
    rt_buf_t b = {0};
    if (strncmp(s, "env:", 4) == 0) {
        const char *v = getenv(s + 4);
        if (v == NULL || v[0] == '\0') {
            rt_cfg_entry_error(PATH, i, "secret", err, errlen, "the environment variable %s is not set", s + 4);
            return -1;
        }
        rt_buf_append(&b, v, strlen(v));
    } else if (strncmp(s, "file:", 5) == 0) {
        unsigned char *data;
        size_t len;
        char why[512];
        if (rt_read_file(s + 5, &data, &len, why, sizeof(why), PATH) != 0) {
            rt_cfg_entry_error(PATH, i, "secret", err, errlen, "cannot read %s", s + 5);
            return -1;
        }
        while (len && (data[len - 1] == '\n' || data[len - 1] == '\r'))
            len--;
        rt_buf_append(&b, (char *)data, len);
        free(data);
    } else {
        rt_buf_append(&b, s, strlen(s));
    }
    if (b.len == 0) {
        rt_buf_free(&b);
        rt_cfg_entry_error(PATH, i, "secret", err, errlen, "the secret is empty");
        return -1;
    }
    e->secret = (unsigned char *)b.base, e->secret_len = b.len;
    return 0;
}

static int endpoint(size_t i, const rt_cfg_entry_t *en, rt_wh_endpoint_t *e, char *err, size_t errlen)
{
    const rt_cfg_field_t *url = rt_cfg_entry_field(en, "url"), *events = rt_cfg_entry_field(en, "events"),
                         *topics = rt_cfg_entry_field(en, "topics"), *secret = rt_cfg_entry_field(en, "secret"),
                         *attempts = rt_cfg_entry_field(en, "max_attempts");
    const char *why;
    if (url == NULL || url->is_seq || url->n != 1 || url->items[0][0] == '\0') {
        rt_cfg_entry_error(PATH, i, "url", err, errlen, "each endpoint needs a url (http://host:port/path)");
        return -1;
    }
    e->url = rt_strndup(rt_cstr(url->items[0]));
    if (strncmp(e->url, "http://", 7) != 0 && strncmp(e->url, "https://", 8) != 0) {
        rt_cfg_entry_error(PATH, i, "url", err, errlen, "\"%s\" is not an http:// or https:// URL", e->url);
        return -1;
    }
    if (rt_httpc_target_parse(e->url, &e->target, 1, &why) != 0) {
        rt_cfg_entry_error(PATH, i, "url", err, errlen, "\"%s\" %s", e->url, why);
        return -1;
    }
    if (e->target.tls && rt_httpc_target_tls(&e->target, rt_cfg_str("webhooks.tls_ca"), &why) != 0) {
        rt_cfg_error("webhooks.tls_ca", err, errlen, "%s %s", rt_cfg_str("webhooks.tls_ca"), why);
        return -1;
    }
    if (events == NULL || events->n == 0) {
        rt_cfg_entry_error(PATH, i, "events", err, errlen, "name the events to send: a list of topic.occupied, "
                                                           "topic.vacated, presence.join, presence.leave, message.published");
        return -1;
    }
    for (size_t k = 0; k < events->n; k++) {
        int t = 0;
        while (t < RT_WH_NTYPES && strcmp(rt_wh_type_names[t], events->items[k]) != 0)
            t++;
        if (t == RT_WH_NTYPES) {
            rt_cfg_entry_error(PATH, i, "events", err, errlen, "\"%s\" is not an event (topic.occupied, topic.vacated, "
                               "presence.join, presence.leave, message.published)", events->items[k]);
            return -1;
        }
        e->events |= 1u << t;
    }
    e->topics = rt_calloc(topics && topics->n ? topics->n : 1, sizeof(char *));
    for (size_t k = 0; topics && k < topics->n; k++) {
        if (rt_topic_check(rt_cstr(topics->items[k]), 1, NULL) != RT_OK) {
            rt_cfg_entry_error(PATH, i, "topics", err, errlen, "\"%s\" is not a topic or pattern (chat.>, rooms.*)",
                               topics->items[k]);
            return -1;
        }
        e->topics[e->ntopics++] = rt_strndup(rt_cstr(topics->items[k]));
    }
    if (secret == NULL || secret->is_seq || secret->n != 1 || secret->items[0][0] == '\0') {
        rt_cfg_entry_error(PATH, i, "secret", err, errlen, "each endpoint needs a secret (the receiver checks "
                                                           "X-Rt-Signature with it); text, env:NAME or file:/path");
        return -1;
    }
    if (secret_of(i, secret->items[0], e, err, errlen) != 0)
        return -1;
    e->max_attempts = 10; /* with the default delays: about 4 minutes of retries */
    if (attempts) {
        char *end;
        long n = attempts->n == 1 && !attempts->is_seq ? strtol(attempts->items[0], &end, 10) : 0;
        if (n < 1 || n > 1000 || *end != '\0') {
            rt_cfg_entry_error(PATH, i, "max_attempts", err, errlen, "\"%s\" is not an integer from 1 to 1000",
                               attempts->n ? attempts->items[0] : "");
            return -1;
        }
        e->max_attempts = (int)n;
    }
    return 0;
}

int rt_wh_config(char *err, size_t errlen)
{
    const rt_cfg_value_t *v = rt_cfg(PATH);
    rt_wh_set.vacated_delay_ms = (uint64_t)rt_cfg_int("webhooks.vacated_delay");
    rt_wh_set.timeout_ms = (uint64_t)rt_cfg_int("webhooks.timeout");
    rt_wh_set.retry_ms = (uint64_t)rt_cfg_int("webhooks.retry_delay");
    rt_wh_set.retry_max_ms = (uint64_t)rt_cfg_int("webhooks.retry_max_delay");
    rt_wh_set.max_queue = (size_t)rt_cfg_int("webhooks.max_queue");
    rt_wh_set.max_in_flight = (size_t)rt_cfg_int("webhooks.max_in_flight");
    if (v == NULL || v->nlist == 0)
        return 0;
    if (v->nlist > MAX_ENDPOINTS) {
        rt_cfg_entry_error(PATH, MAX_ENDPOINTS, "url", err, errlen, "at most %d endpoints", MAX_ENDPOINTS);
        return -1;
    }
    rt_wh_eps = rt_calloc(v->nlist, sizeof(*rt_wh_eps));
    for (size_t i = 0; i < v->nlist; i++) {
        rt_wh_neps = i + 1;
        if (endpoint(i, &v->entries[i], &rt_wh_eps[i], err, errlen) != 0)
            return -1;
    }
    return 0;
}

void rt_wh_config_free(void)
{
    for (size_t i = 0; i < rt_wh_neps; i++) {
        rt_wh_endpoint_t *e = &rt_wh_eps[i];
        free(e->url);
        if (e->target.host)
            rt_httpc_target_free(&e->target);
        for (size_t k = 0; k < e->ntopics; k++)
            free(e->topics[k]);
        free(e->topics);
        free(e->secret);
    }
    free(rt_wh_eps);
    rt_wh_eps = NULL, rt_wh_neps = 0;
    rt_httpc_tls_free();
}
