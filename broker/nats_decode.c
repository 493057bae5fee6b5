/*
 * Decoding a NATS message (stream or core NATS, published by the broker or by any other NATS client) into the
 * broker's message: subject to topic, headers Rt-Event and Content-Type, the payload. The rules an HTTP publish
 * is held to apply here too, since anything that reaches the subject bypasses POST /pub's checks.
 */
#include <string.h>

#include "nats_decode.h"
#include "publish.h"
#include "topic.h"

rt_msg_t *rt_nats_decode(natsMsg *m, const char *prefix, const char *sep)
{
    const char *subject = natsMsg_GetSubject(m);
    size_t plen = strlen(prefix), slen = strlen(sep);
    if (subject == NULL || strncmp(subject, prefix, plen) != 0 || strncmp(subject + plen, sep, slen) != 0 ||
        rt_topic_check(rt_cstr(subject + plen + slen), 0, NULL) != RT_OK) {
        rt_log(RT_LOG_DEBUG, "nats: subject %s is not a topic; skipped", subject ? subject : "(none)");
        return NULL;
    }
    const char *event = NULL, *ctype = NULL;
    natsMsgHeader_Get(m, "Rt-Event", &event);
    natsMsgHeader_Get(m, "Content-Type", &ctype);
    rt_str_t ev = rt_cstr(event);
    if (ev.len && !rt_event_valid(ev)) { /* SSE writes it as a field line and plugins count on POST /pub's rule */
        rt_log(RT_LOG_DEBUG, "nats: a message on %s has an Rt-Event that is not an event name; its event is dropped", subject);
        ev.len = 0;
    }
    int len = natsMsg_GetDataLength(m);
    return rt_msg_new(rt_cstr(subject + plen + slen), ev, rt_cstr(ctype), rt_str(natsMsg_GetData(m), len > 0 ? (size_t)len : 0));
}
