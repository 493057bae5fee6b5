/* The long-poll transport (plugins/longpoll) on a request read by broker/http.c: topics, cursor= / since= /
 * Last-Event-ID, timeout=, presence= and client=, then messages, gaps, timers and the end (fake_stream.h gives
 * the input's form). The answer must be one JSON object and a newline: a cursor that is an id, the client id
 * and the client_key that continues it (the id, a dot and its MAC) when there is one, and at most longpoll.max_messages envelopes (3 here), in the order delivered. */
#include "fake_stream.h"
#include "presence.h"
#include "text.h"
#include "topic.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_stream_setup();
    return 0;
}

static void check_write(rt_str_t bytes, rt_msg_t *msg)
{
    (void)bytes, (void)msg;
    FUZZ_ASSERT(!"long-poll answers once, with sub_respond");
}

static void check_respond(int status, rt_str_t body)
{
    rt_json_field_t f[8];
    rt_str_t items[8];
    char text[RT_ID_MAX + RT_CLIENT_MAX + 1];
    rt_id_t id;
    FUZZ_ASSERT(body.len >= 2 && body.base[body.len - 1] == '\n');
    int n = rt_json_object((rt_str_t){body.base, body.len - 1}, f, 8);
    FUZZ_ASSERT(n > 0);
    if (status != 200)
        return;
    int cursor = 0, messages = 0, client_len = -1;
    char client[RT_CLIENT_MAX + 1];
    for (int i = 0; i < n; i++) {
        if (rt_str_eqc(f[i].key, "client_key")) {
            char key[RT_CLIENT_KEY_MAX + 1];
            FUZZ_ASSERT(f[i].type == 's' && client_len > 0); /* after the id it continues */
            int len = rt_json_unescape(f[i].value, key, sizeof(key));
            FUZZ_ASSERT(len == client_len + 33 && memcmp(key, client, (size_t)client_len) == 0 && key[client_len] == '.');
            client_len = 0;
        } else if (rt_str_eqc(f[i].key, "cursor") || rt_str_eqc(f[i].key, "client")) {
            FUZZ_ASSERT(f[i].type == 's');
            int len = rt_json_unescape(f[i].value, text, sizeof(text));
            FUZZ_ASSERT(len >= 0);
            if (rt_str_eqc(f[i].key, "cursor"))
                cursor = rt_id_parse((rt_str_t){text, (size_t)len}, &id) == RT_OK;
            else {
                FUZZ_ASSERT(rt_presence_client_ok((rt_str_t){text, (size_t)len}));
                memcpy(client, text, (size_t)len);
                client_len = len;
            }
        } else if (rt_str_eqc(f[i].key, "messages")) {
            FUZZ_ASSERT(f[i].type == 'a');
            int count = rt_json_array(f[i].value, items, 8);
            FUZZ_ASSERT(count >= 0 && count <= 3);
            for (int k = 0; k < count; k++)
                FUZZ_ASSERT(items[k].len && items[k].base[0] == '{');
            messages = 1;
        }
    }
    FUZZ_ASSERT(cursor && messages && client_len <= 0); /* no client id without its key */
}

static const fuzz_stream_check_t check = {check_write, check_respond};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stream_run(data, size, &check);
    return 0;
}
