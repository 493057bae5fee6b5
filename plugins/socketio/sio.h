/* The Socket.IO transport's shared state: Engine.IO sessions (polling, kept on this node), connections, and the
 * Socket.IO layer both transports feed. Only rtbroker/plugin.h underneath. */
#ifndef RT_SIO_H
#define RT_SIO_H

#include <pthread.h>

#include "../websocket/ws_frame.h"
#include "rtbroker/plugin.h"
#include "sio_packet.h"

#define SIO_ID_LEN 20  /* Engine.IO sid, Socket.IO sid and pid: random base64url */
#define SIO_CURSOR_MAX 64

typedef struct sio_topic {
    char *pattern;
    size_t len;
    int presence;
    int emitted; /* from emit('subscribe'): carried by the recovery token (auth.topics come back with auth) */
} sio_topic_t;

/* One Socket.IO socket on the default namespace. */
typedef struct sio_state {
    int connected;
    int connecting; /* a CONNECT waits for the backend's verdicts on its topics (proxy.subscribe) */
    char sid[SIO_ID_LEN + 1], pid[SIO_ID_LEN + 1];
    char *token; /* the CONNECT auth token, replayed on each polling request's subscriber */
    size_t token_len;
    sio_topic_t *topics; /* what it subscribed to (polling re-subscribes them on each GET; recovery restores them) */
    size_t ntopics;
    char *rtok; /* WebSocket: "~MAC~topics\"]", the signed emitted topics ending each offset; NULL when none */
    size_t rtok_len;
    char cursor[SIO_CURSOR_MAX]; /* polling: where the next GET resumes */
    size_t cursor_len;
    char client[64]; /* polling: the presence client id handed back to the broker */
    size_t client_len;
} sio_state_t;

/* An Engine.IO session opened by a polling handshake. Every field is read and written under sio_lock. */
typedef struct sio_session {
    struct sio_session *next;
    char sid[SIO_ID_LEN + 1];
    int upgraded, probing, get_held, dead;
    int client_closed; /* a "1" from the client: a held GET ends with a noop */
    int echo;          /* socketio.echo on /engine.io: messages come back (protocol test suite) */
    uint64_t next_ping, pong_deadline, last_seen;
    int pong_pending;
    sio_state_t st;
    char *out; /* Engine.IO packets waiting for the next GET, \x1e-separated */
    size_t out_len, out_cap;
} sio_session_t;

enum { CONN_WS = 1, CONN_GET = 2, CONN_POST = 3 };

/* A subscriber's data area: a WebSocket connection, a held polling GET, or a POST being processed. */
typedef struct sio_conn {
    int kind;
    char sid[SIO_ID_LEN + 1]; /* the Engine.IO session (polling, or the one a WebSocket upgrades) */
    int gap;                  /* a gap was reported during the current subscribe */
    /* GET: event packets gathered for the answer */
    char *buf;
    size_t len, cap;
    int full, answered;
    char last_id[SIO_CURSOR_MAX];
    size_t last_id_len;
    /* POST: publishes (and, with proxy.subscribe, subscribes and a CONNECT) waiting for their answer */
    int pending, parsed;
    struct sio_connect *connecting; /* the CONNECT waiting for the backend on this subscriber (sio_proxy.c) */
    /* WebSocket */
    sio_state_t st;
    int probe_sid, close_sent, closed_in, pong_pending, echo;
    unsigned char *msg;
    size_t msg_len, msg_cap;
    int msg_opcode;
} sio_conn_t;

/* Where the Socket.IO layer acts: the subscriber to subscribe/publish on, the state, and how to send. */
typedef struct sio_io {
    rt_sub_t *sub;
    sio_state_t *st;
    sio_session_t *sess; /* polling: the session (sio_lock held); NULL on a WebSocket */
    int polling;
} sio_io_t;

extern const rt_services_t *sio_svc;
extern const rt_transport_t rt_transport_v1;
extern pthread_mutex_t sio_lock;
extern uint64_t sio_ping_interval, sio_ping_timeout;
extern size_t sio_max_payload;
extern int sio_echo;

uint64_t sio_now(void);
void sio_random_id(char out[SIO_ID_LEN + 1]);

/* A CONNECT's facts: the topics to subscribe (auth.topics, recovered ones) and the recovery asked for. */
typedef struct sio_connect {
    sio_state_t want;
    char from[SIO_CURSOR_MAX]; /* the recovery point: the id part of the offset; empty when not recovering */
    size_t from_len;
    char pid[SIO_ID_LEN + 1];  /* the pid to keep when recovered */
    int recovering, recoverable, refused;
    /* proxy.subscribe: the verdicts awaited (sio_proxy.c) */
    unsigned char *from_auth, *ok; /* per topic of want: named by auth.topics; subscribed */
    size_t waiting;
    int err;                   /* the first refusal of an auth.topics topic: the CONNECT is refused with it */
    char why[256];
} sio_connect_t;

extern int sio_proxy_connect, sio_proxy_sub; /* proxy.connect.url, proxy.subscribe.url are set */

/* socketio.c */
void sio_session_push(sio_session_t *s, const char *pkt, size_t len); /* queue one Engine.IO packet */
sio_session_t *sio_session_find(const char *sid, size_t len);        /* sio_lock held */
int sio_handshake_packet(char *buf, size_t cap, const char *sid, int upgrades); /* "0{sid,upgrades,...}" */
void sio_session_remove(sio_session_t *s);                           /* sio_lock held; frees it */

/* sio_events.c */
void sio_send(sio_io_t *io, const char *pkt, size_t len); /* one Engine.IO packet */
/* "4" + a Socket.IO packet built from pieces */
void sio_send_sio(sio_io_t *io, const char *a, size_t alen, const char *b, size_t blen, const char *c, size_t clen);
void sio_ack(sio_io_t *io, int64_t id, const char *json, size_t len);
void sio_ack_error(sio_io_t *io, int64_t id, const char *code, const char *message); /* {"error","message"} */
void sio_connect_error(sio_io_t *io, const char *code, const char *message);         /* CONNECT_ERROR */
void sio_connect_done(sio_io_t *io, sio_connect_t *k); /* the CONNECT answer once k->want is subscribed */
/* subscribe(topic, {since, presence}) once allowed: subscribes, joins, acks ok or the refusal */
void sio_subscribe_now(sio_io_t *io, int64_t ack_id, rt_str_t topic, rt_str_t since, int presence);
/* Handles one Socket.IO packet; -1 when the connection must close (a malformed packet). */
int sio_handle(sio_io_t *io, const char *p, size_t n);
rt_str_t sio_encode_event(rt_msg_t *msg, int slot); /* slot 0: packet text; slot 1: WebSocket frame */
void sio_gap_packet(sio_io_t *io, rt_str_t from);
void sio_expiring(sio_io_t *io, int64_t seconds_left);
void sio_dropped(sio_io_t *io, rt_str_t pattern);
void sio_state_free(sio_state_t *st, int keep_for_recovery);
int sio_state_subscribe(rt_sub_t *sub, sio_state_t *st, int presence_flags); /* polling GET / upgrade */
void sio_recovery_fini(void);

/* sio_recover.c: the recovery token, so that a socket's emitted topics come back on any node of a cluster */
#define SIO_TOKEN_MAX 4096 /* the longest token: a subscribe that would pass it is refused */
extern uint64_t sio_recovery_window;
int sio_topic_find(const sio_state_t *st, const char *t, size_t len); /* its index or -1 */
void sio_topic_add(sio_state_t *st, const char *t, size_t len, int presence, int emitted);
void sio_topics_clear(sio_state_t *st);
size_t sio_token_need(const sio_state_t *st, size_t topic_len); /* the token's length with one more topic */
void sio_token_update(sio_state_t *st);                         /* after the topics or the pid changed */
/* Splits offset into the id (*idlen bytes) and its token; adds the token's topics to want. 0: no token, 1: a
 * valid one, -1: refused (a MAC that does not match pid, a malformed or oversized token). */
int sio_token_parse(const char *pid, const char *offset, size_t len, size_t *idlen, sio_state_t *want);
int sio_recover_subscribe(rt_sub_t *sub, const sio_state_t *want, rt_str_t from); /* all of want, from */
int sio_recover_prune(sio_io_t *io, sio_state_t *want); /* drops (and reports) what the token refuses; how many left */
void sio_offset_packet(sio_io_t *io, rt_str_t cursor); /* 2["rt.offset","<cursor>~MAC~topics"]: a new offset */

/* sio_proxy.c: Socket.IO under proxy.subscribe, where each topic waits for the backend's yes (subscribe_ask) */
/* The CONNECT's topics (k, taken) asked about in parallel; recovered ones (index < nrecovered) that are refused are
 * dropped with rt.dropped, an auth.topics one (auth_at) refuses the CONNECT with the backend's code and reason. */
void sio_connect_ask(sio_io_t *io, sio_connect_t *k, size_t nrecovered, const size_t *auth_at, size_t nauth);
void sio_subscribe_ask(sio_io_t *io, int64_t ack_id, rt_str_t topic, rt_str_t since, int presence);
/* A WebSocket taking over a polling session: its topics asked about again (the request is another connection). */
void sio_adopt_ask(rt_sub_t *sub, sio_conn_t *c);
void sio_connect_release(rt_sub_t *sub, sio_conn_t *c); /* the subscriber goes with a CONNECT waiting */
void sio_post_settle(rt_sub_t *sub, sio_conn_t *c);     /* one answer of a POST in: 200 "ok" once all are */

/* sio_ws.c */
/* refuse: answer the 101, then close (a second upgrade of a session: a browser cannot read a 400). */
void sio_ws_start(rt_request_t *req, sio_session_t *probing, int echo, int refuse); /* sio_lock held */
void sio_ws_send(rt_sub_t *sub, const char *text, size_t len);
void sio_ws_close(rt_sub_t *sub, unsigned code, const char *reason);
size_t sio_ws_receive(rt_sub_t *sub, const char *bytes, size_t len);
void sio_ws_release(rt_sub_t *sub, sio_conn_t *c);

#endif
