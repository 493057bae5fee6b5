/* The WebSocket upgrade (plugins/websocket/websocket.c's start: Upgrade, Sec-WebSocket-Key / -Version /
 * -Protocol / -Extensions, topics and resume id from the URL) on a request read by broker/http.c.
 * Input: "PATH?QUERY\nName: value\n..."; a header X-Fuzz holds knobs: 'a' no token yet (rt.v1 may auth
 * later), 'r' a refused token, 'h' HTTP/2 (no upgrade). */
#include "fake_req.h"
#include "http.h"
#include "fake_svc.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_ws_setup();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_req_t req;
    fake_req_init(&req, data, size);
    rt_str_t knobs = rt_req_header(&req, "x-fuzz");
    int auth_later = knobs.len && memchr(knobs.base, 'a', knobs.len);
    int refused = knobs.len && memchr(knobs.base, 'r', knobs.len);
    fuzz_ws.deflate_enabled = 1;
    fuzz_ws.echo = 0;
    fuzz_ws.auth_state = refused ? RT_EUNAUTHORIZED : auth_later ? 1 : RT_OK;
    fuzz_ws.upgrade_fails = knobs.len && memchr(knobs.base, 'h', knobs.len);
    fuzz_ws.req = (rt_request_t *)&req;
    fuzz_ws_begin();
    int claimed = rt_transport_v1.claims((rt_request_t *)&req);
    FUZZ_ASSERT(claimed >= 0);
    rt_transport_v1.start((rt_request_t *)&req);
    FUZZ_ASSERT(fuzz_ws.responded || fuzz_ws.upgraded); /* every request gets an answer */
    fuzz_ws_end();
    fake_req_free(&req);
    return 0;
}
