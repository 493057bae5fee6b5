/* rt.v1 ops (plugins/websocket/ws_ops.c): each input is one text message's JSON, handled as on an open,
 * authenticated rt.v1 connection; replies are checked to be JSON (fake_svc.c). */
#include "fake_svc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_ws_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_ws.deflate_enabled = 0;
    fuzz_ws.echo = 0;
    fuzz_ws.auth_state = RT_OK;
    fuzz_ws_begin();
    rt_sub_t *sub = fuzz_services.sub_open(NULL, &rt_transport_v1, sizeof(ws_conn_t));
    ws_conn_t *c = fuzz_ws_conn();
    c->mode = WS_MODE_V1;
    ws_ops_handle(sub, c, (const char *)data, size);
    fuzz_ws_end();
    return 0;
}
