/* WebSocket input framing (plugins/websocket: websocket.c's receive, ws_frame.c, ws_deflate.c's inflate):
 * byte 0 picks the connection (bit 0 rt.v1, bit 1 permessage-deflate negotiated, bit 2 raw echo), byte 1
 * how the rest is cut into reads; the rest is what the client sends, fragments and control frames included. */
#include "fake_svc.h"

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
    (void)sub;
    fuzz_ws_feed(data + 2, size - 2, data[1]);
    fuzz_ws_end();
    return 0;
}
