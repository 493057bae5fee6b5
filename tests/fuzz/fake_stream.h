/* A stand-in for the broker's services for the HTTP transports that stream or hold a request (SSE, long-poll,
 * NDJSON): a request read by broker/http.c and auth.c, then what the hub hands the plugin afterwards (retained
 * and live messages, gaps, timers, the end). Each target links one plugin (its rt_transport_v1) and checks what
 * that plugin writes. Input: "PATH?QUERY\nName: value\n...\n\n" then actions, each an opcode byte, a length
 * byte and that many bytes (fake_stream.c lists them). */
#ifndef RT_FAKE_STREAM_H
#define RT_FAKE_STREAM_H

#include "fuzz.h"

typedef struct fuzz_stream_check {
    /* Bytes queued on the stream by one write_ref / write_copy; msg is the message they encode, or NULL. */
    void (*write)(rt_str_t bytes, rt_msg_t *msg);
    /* The whole body of an answer given with sub_respond (long-poll). */
    void (*respond)(int status, rt_str_t body);
} fuzz_stream_check_t;

/* Once per process: configuration (anonymous access to chat.> and news.*, a JWT secret), retained messages. */
void fuzz_stream_setup(void);
/* Runs one input through the plugin, checking every call it makes (and, through check, what it writes). */
void fuzz_stream_run(const uint8_t *data, size_t size, const fuzz_stream_check_t *check);

#endif
