/*
 * Authorization decisions for subscribe and publish. A subscription pattern is allowed
 * only when a granted pattern covers every topic it can match (rt_topic_covers), so
 * `chat.*` never grants `chat.>`. Tokenless clients get auth.anonymous.*; nothing is
 * open when those keys are absent.
 */
#include <stdio.h>

#include "auth.h"
#include "config.h"
#include "ops.h"
#include "topic.h"

static const rt_cfg_value_t *anon_sub, *anon_pub;

static int check_list(const rt_cfg_value_t *v, char *err, size_t errlen)
{
    for (size_t i = 0; i < v->nlist; i++) {
        if (rt_topic_check(rt_cstr(v->list[i]), 1, NULL) != RT_OK) {
            snprintf(err, errlen, "config: %s: \"%s\" is not a topic pattern (segments of A-Z a-z 0-9 _ -, '*', '>' last)%s",
                     v->path, v->list[i], v->line ? "" : "");
            if (v->line)
                snprintf(err + strlen(err), errlen - strlen(err), " (line %d)", v->line);
            return -1;
        }
    }
    return 0;
}

int rt_auth_init(char *err, size_t errlen)
{
    anon_sub = rt_cfg("auth.anonymous.subscribe");
    anon_pub = rt_cfg("auth.anonymous.publish");
    if (check_list(anon_sub, err, errlen) || check_list(anon_pub, err, errlen))
        return -1;
    return 0;
}

static int granted(const rt_cfg_value_t *v, rt_str_t pattern)
{
    for (size_t i = 0; i < v->nlist; i++)
        if (rt_topic_covers(rt_cstr(v->list[i]), pattern))
            return 1;
    return 0;
}

int rt_auth_can_subscribe(rt_request_t *req, rt_str_t pattern)
{
    (void)req;
    if (granted(anon_sub, pattern))
        return RT_OK;
    rt_metrics_auth_failure();
    return RT_EUNAUTHORIZED;
}

int rt_auth_can_publish(rt_request_t *req, rt_str_t topic)
{
    (void)req;
    if (granted(anon_pub, topic))
        return RT_OK;
    rt_metrics_auth_failure();
    return RT_EUNAUTHORIZED;
}

int rt_auth_anonymous_open(void) { return anon_sub->nlist > 0 || anon_pub->nlist > 0; }
