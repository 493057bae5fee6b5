/* WebSocket framing (plugins/websocket: websocket.c's receive and deliver, ws_frame.c, ws_deflate.c):
 * byte 0 picks the connection (bit 0 rt.v1, bit 1 permessage-deflate negotiated, bit 2 raw echo), byte 1
 * how the rest is cut into reads; the rest is what the client sends, fragments and control frames included.
 * Then the same bytes are delivered as a published message (bit 3: as application/json). */
#include "fake_svc.h"
#include "message.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_ws_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    fuzz_ws.deflate_enabled = 1;
    fuzz_ws.echo = (data[0] >> 2) & 1;
    fuzz_ws.auth_state = RT_OK;
    fuzz_ws_begin();
    /* what ws_start leaves behind after an accepted upgrade */
    rt_sub_t *sub = fuzz_services.sub_open(NULL, &rt_transport_v1, sizeof(ws_conn_t));
    ws_conn_t *c = fuzz_ws_conn();
    c->mode = data[0] & 1 ? WS_MODE_V1 : WS_MODE_RAW;
    c->deflate = (data[0] >> 1) & 1;
    fuzz_ws_feed(data + 2, size - 2, data[1]);
    if (!fuzz_ws.closed) {
        rt_str_t ctype = data[0] & 8 ? RT_STRLIT("application/json") : RT_STRLIT("");
        rt_msg_t *m = rt_msg_new(RT_STRLIT("chat.a"), RT_STRLIT(""), ctype, rt_str((const char *)data + 2, size - 2));
        rt_msg_set_id(m, RT_STRLIT("e1"), 9);
        rt_transport_v1.deliver(sub, m);
        rt_msg_unref(m);
    }
    fuzz_ws_end();
    return 0;
}
