/* rt.v1: the JSON ops a client sends over a WebSocket, and the connection state they share with framing. */
#ifndef RT_WS_OPS_H
#define RT_WS_OPS_H

#include "rtbroker/plugin.h"
#include "ws_frame.h"

enum { WS_MODE_RAW = 0, WS_MODE_V1 = 1 };

typedef struct ws_conn {
    int mode, deflate, close_sent, closed_in; /* closed_in: input is no longer parsed */
    uint64_t last_seen;
    /* the message being received */
    int msg_opcode, msg_compressed;
    ws_utf8_t utf8;
    unsigned char *msg;
    size_t msg_len, msg_cap;
    rt_str_t gap_topic; /* the pattern being subscribed, for a gap notice */
    int limited;        /* publishes refused in a row by a rate limit */
    int authed;         /* the broker accepted its credentials (or needs none): input is no longer capped */
    size_t unauthed_in; /* bytes received before that */
} ws_conn_t;

void ws_ops_handle(rt_sub_t *sub, ws_conn_t *c, const char *json, size_t len);
void ws_ops_gap(rt_sub_t *sub, ws_conn_t *c, rt_str_t from);
void ws_ops_dropped(rt_sub_t *sub, rt_str_t pattern);

/* from websocket.c */
void ws_send_text(rt_sub_t *sub, const char *text, size_t len);
void ws_close(rt_sub_t *sub, unsigned code, const char *reason);
extern const rt_transport_t rt_transport_v1;

#endif
