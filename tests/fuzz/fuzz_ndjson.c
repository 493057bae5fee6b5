/* The NDJSON transport (plugins/ndjson) on a request read by broker/http.c: Accept, topics, Last-Event-ID /
 * since=, presence=, then messages, gaps, heartbeats and the end (fake_stream.h gives the input's form). Every
 * write must be whole lines, each one JSON object; a message's line is its envelope. */
#include "fake_stream.h"
#include "message.h"
#include "text.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_stream_setup();
    return 0;
}

static void check_write(rt_str_t b, rt_msg_t *msg)
{
    rt_json_field_t f[8];
    FUZZ_ASSERT(b.len >= 1 && b.base[b.len - 1] == '\n');
    for (size_t pos = 0; pos < b.len;) {
        const char *nl = memchr(b.base + pos, '\n', b.len - pos);
        rt_str_t line = {b.base + pos, (size_t)(nl - b.base) - pos};
        pos += line.len + 1;
        FUZZ_ASSERT(line.len > 0 && line.base[0] == '{' && rt_json_valid(line.base, line.len));
        if (msg) {
            rt_str_t env = rt_msg_envelope(msg);
            FUZZ_ASSERT(line.len == env.len && memcmp(line.base, env.base, env.len) == 0 && pos == b.len);
        } else {
            int n = rt_json_object(line, f, 8), typed = 0;
            for (int i = 0; i < n; i++)
                typed |= rt_str_eqc(f[i].key, "type") && f[i].type == 's';
            FUZZ_ASSERT(typed); /* ok, ping, gap, shutdown, expired */
        }
    }
}

static void check_respond(int status, rt_str_t body)
{
    (void)status, (void)body;
    FUZZ_ASSERT(!"NDJSON answers with a stream");
}

static const fuzz_stream_check_t check = {check_write, check_respond};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stream_run(data, size, &check);
    return 0;
}
