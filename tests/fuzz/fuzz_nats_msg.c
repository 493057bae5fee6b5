/* Messages from any NATS client (broker/nats_decode.c, what the NATS bus does with each message of the stream and
 * of core NATS): subject to topic, headers Rt-Event, Content-Type and Nats-Msg-Id, the payload. Input: the
 * subject, then "Name: value" header lines, a blank line, and the payload. Each is read as a stream message and
 * as an ephemeral one; a message the broker keeps must have the topic of its subject, an event a publish could
 * carry (what SSE writes as a field) and the payload as sent, and its JSON envelope must be valid. */
#include <nats/nats.h>

#include "fuzz.h"
#include "message.h"
#include "nats_decode.h"
#include "publish.h"
#include "text.h"
#include "topic.h"

#define PREFIX "rt"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    rt_log_level = -1;
    FUZZ_ASSERT(nats_Open(-1) == NATS_OK); /* nats.c's globals (natsMsg_Destroy needs them), as a connection would */
    return 0;
}

static void check(natsMsg *m, const char *sep, rt_str_t payload)
{
    const char *subject = natsMsg_GetSubject(m), *ctype = NULL;
    size_t skip = strlen(PREFIX) + strlen(sep);
    rt_msg_t *msg = rt_nats_decode(m, PREFIX, sep);
    int ours = strlen(subject) > skip && strncmp(subject, PREFIX, strlen(PREFIX)) == 0 &&
               strncmp(subject + strlen(PREFIX), sep, strlen(sep)) == 0 && rt_topic_check(rt_cstr(subject + skip), 0, NULL) == RT_OK;
    FUZZ_ASSERT(ours == (msg != NULL));
    if (msg == NULL)
        return;
    FUZZ_ASSERT(rt_str_eqc(msg->topic, subject + skip));
    FUZZ_ASSERT(msg->event.len == 0 || rt_event_valid(msg->event));
    FUZZ_ASSERT(msg->data.len == payload.len && (payload.len == 0 || memcmp(msg->data.base, payload.base, payload.len) == 0));
    natsMsgHeader_Get(m, "Content-Type", &ctype);
    FUZZ_ASSERT(rt_str_eqc(msg->content_type, ctype ? ctype : ""));
    rt_msg_set_id(msg, RT_STRLIT("e1"), 7);
    rt_str_t env = rt_msg_envelope(msg);
    rt_json_field_t f[8];
    FUZZ_ASSERT(rt_json_object(env, f, 8) >= 4);
    rt_msg_unref(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    rt_str_t line;
    char subject[512];
    if (!fuzz_line(data, size, &pos, &line) || line.len == 0 || line.len >= sizeof(subject) || memchr(line.base, 0, line.len))
        return 0;
    memcpy(subject, line.base, line.len);
    subject[line.len] = '\0';
    rt_str_t headers[16];
    size_t nheaders = 0;
    while (fuzz_line(data, size, &pos, &line) && line.len > 0)
        if (nheaders < 16)
            headers[nheaders++] = line;
    rt_str_t payload = pos < size ? (rt_str_t){(const char *)data + pos, size - pos} : (rt_str_t){NULL, 0};
    natsMsg *m = NULL;
    if (natsMsg_Create(&m, subject, NULL, payload.base, (int)payload.len) != NATS_OK)
        return 0;
    for (size_t i = 0; i < nheaders; i++) {
        char name[128], value[1024];
        line = headers[i];
        const char *colon = memchr(line.base, ':', line.len);
        if (colon == NULL || colon == line.base || (size_t)(colon - line.base) >= sizeof(name))
            continue;
        size_t nl = (size_t)(colon - line.base), vl = line.len - nl - 1;
        const char *v = colon + 1;
        if (vl && *v == ' ')
            v++, vl--;
        if (vl >= sizeof(value) || memchr(line.base, 0, line.len))
            continue;
        memcpy(name, line.base, nl), name[nl] = '\0';
        memcpy(value, v, vl), value[vl] = '\0';
        natsMsgHeader_Add(m, name, value); /* as nats.c hands them over after reading them off the wire */
    }
    check(m, ".", payload);
    check(m, "_eph.", payload);
    check(m, "_live.", payload); /* re-published stream messages, as the live thread reads them */
    natsMsg_Destroy(m);
    return 0;
}
