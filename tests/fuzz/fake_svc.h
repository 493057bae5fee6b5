/* A stand-in for the broker's rt_services_t, so that the WebSocket plugin's handshake, framing and rt.v1 ops
 * run without a server. Requests are real h2o_req_t (fake_req.h) read by broker/http.c; topic, id, auth and
 * publish checks are the broker's own. Every frame the plugin writes is checked (fake_svc.c says what). */
#ifndef RT_FAKE_SVC_H
#define RT_FAKE_SVC_H

#include "fuzz.h"
#include "ws_ops.h"

typedef struct fuzz_ws {
    /* knobs, set before fuzz_ws_begin */
    int deflate_enabled, echo, auth_state, upgrade_fails;
    rt_request_t *req;
    /* what happened */
    int opened, closed, upgraded, responded;
    void (*timer[2])(rt_sub_t *sub);
} fuzz_ws_t;

extern fuzz_ws_t fuzz_ws;
extern const rt_services_t fuzz_services;

/* Once per process: configuration (anonymous access to chat.> and news.*, a JWT secret). */
void fuzz_ws_setup(void);
/* Before each input: resets the state and runs the plugin's init with the knobs. */
void fuzz_ws_begin(void);
/* The subscriber the plugin gets from sub_open, and its data area. */
rt_sub_t *fuzz_ws_sub(void);
ws_conn_t *fuzz_ws_conn(void);
/* Feeds client bytes as the broker does (unconsumed bytes are offered again with the next ones). */
void fuzz_ws_feed(const uint8_t *data, size_t size, unsigned seed);
/* After each input: fires pending timers once, then releases the subscriber. */
void fuzz_ws_end(void);

#endif
