/* The SSE transport (plugins/sse) on a request read by broker/http.c: Accept, topics from the path and topic=,
 * Last-Event-ID / lastEventId= / since=, envelope=, presence= and client=, then messages, gaps, heartbeats and
 * the end (fake_stream.h gives the input's form). Every write must be whole SSE blocks a browser reads back as
 * sent: lines of "id", "event", "data", "retry" or comments, no CR, a blank line at the end; a message's block
 * is one event whose id, event and data lines give back its id, event and payload (or its envelope). */
#include "fake_stream.h"
#include "message.h"
#include "text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_stream_setup();
    return 0;
}

static int field(rt_str_t line, const char *name, rt_str_t *value)
{
    size_t n = strlen(name);
    if (line.len < n + 2 || memcmp(line.base, name, n) != 0 || line.base[n] != ':' || line.base[n + 1] != ' ')
        return 0;
    *value = (rt_str_t){line.base + n + 2, line.len - n - 2};
    return 1;
}

/* The payload as data lines give it back: CR, LF and CRLF each end a line, lines are joined by LF. */
static void normalized(rt_str_t data, rt_buf_t *out)
{
    for (size_t i = 0; i < data.len; i++) {
        if (data.base[i] == '\r' && i + 1 < data.len && data.base[i + 1] == '\n')
            i++;
        rt_buf_append(out, data.base[i] == '\r' ? "\n" : &data.base[i], 1);
    }
}

static void check_write(rt_str_t b, rt_msg_t *msg)
{
    FUZZ_ASSERT(b.len >= 2 && b.base[b.len - 1] == '\n' && b.base[b.len - 2] == '\n');
    FUZZ_ASSERT(memchr(b.base, '\r', b.len) == NULL);
    rt_buf_t data = {0};
    rt_str_t id = {NULL, 0}, event = {NULL, 0}, v;
    size_t events = 0, ndata = 0;
    int in_event = 0;
    for (size_t pos = 0; pos < b.len;) {
        const char *nl = memchr(b.base + pos, '\n', b.len - pos);
        rt_str_t line = {b.base + pos, (size_t)(nl - b.base) - pos};
        pos += line.len + 1;
        if (line.len == 0) {
            events += in_event;
            in_event = 0;
            continue;
        }
        if (line.base[0] == ':')
            continue; /* a comment */
        if (field(line, "retry", &v)) {
            FUZZ_ASSERT(msg == NULL && v.len > 0 && strspn(v.base, "0123456789") >= v.len);
            continue;
        }
        in_event = 1;
        if (field(line, "data", &v)) {
            if (ndata++)
                rt_buf_append(&data, "\n", 1);
            rt_buf_append(&data, v.base, v.len);
        } else if (field(line, "id", &v)) {
            FUZZ_ASSERT(id.base == NULL && rt_utf8_valid(v.base, v.len));
            id = v;
        } else if (field(line, "event", &v)) {
            FUZZ_ASSERT(event.base == NULL && rt_utf8_valid(v.base, v.len));
            event = v;
        } else {
            FUZZ_ASSERT(!"a line that is not id, event, data, retry or a comment");
        }
    }
    if (msg) {
        FUZZ_ASSERT(events == 1);
        FUZZ_ASSERT(id.len == msg->id.len && (id.len == 0 || memcmp(id.base, msg->id.base, id.len) == 0));
        rt_str_t env = rt_msg_envelope(msg);
        rt_buf_t plain = {0};
        normalized(msg->data, &plain);
        int as_plain = data.len == plain.len && (data.len == 0 || memcmp(data.base, plain.base, data.len) == 0);
        int as_envelope = data.len == env.len && memcmp(data.base, env.base, env.len) == 0;
        FUZZ_ASSERT(as_plain || as_envelope);
        if (as_plain && !as_envelope)
            FUZZ_ASSERT(event.len == msg->event.len && (event.len == 0 || memcmp(event.base, msg->event.base, event.len) == 0));
        else
            FUZZ_ASSERT(event.len == 0);
        rt_buf_free(&plain);
    } else if (events) {
        FUZZ_ASSERT(event.len > 3 && memcmp(event.base, "rt.", 3) == 0); /* rt.gap, rt.shutdown, rt.expired */
        FUZZ_ASSERT(rt_json_valid(data.base, data.len));
    }
    rt_buf_free(&data);
}

static void check_respond(int status, rt_str_t body)
{
    (void)status, (void)body;
    FUZZ_ASSERT(!"SSE answers with a stream");
}

static const fuzz_stream_check_t check = {check_write, check_respond};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stream_run(data, size, &check);
    return 0;
}
