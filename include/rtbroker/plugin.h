/*
 * rtbroker transport plugin ABI, version 1.
 *
 * The only header a transport plugin includes. A plugin is a shared object that
 * exports one symbol, `rt_transport_v1` (an rt_transport_t). The broker calls into it
 * through that table and the plugin calls back through rt_services_t. Nothing of the
 * broker's internals (h2o, the bus, the subscription index) is visible here.
 *
 * Threads: every callback runs on a worker thread, and every service may be called
 * only from the worker thread that made the call (init/fini: the main thread).
 * A request, subscriber and message handed to a callback belongs to that worker.
 *
 * Strings are (pointer, length) slices and are never assumed NUL-terminated.
 */
#ifndef RTBROKER_PLUGIN_H
#define RTBROKER_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#define RT_PLUGIN_ABI_VERSION 1

/* A byte slice; not NUL-terminated. */
typedef struct rt_str {
    const char *base; /* first byte (may be NULL when len is 0) */
    size_t len;       /* number of bytes */
} rt_str_t;

/* Opaque handles, owned by the broker. */
typedef struct rt_request rt_request_t; /* an HTTP request being handled; valid until answered or closed */
typedef struct rt_sub rt_sub_t;         /* a subscriber: one connection's subscriptions and its outbound queue */
typedef struct rt_msg rt_msg_t;         /* an immutable, refcounted message */
typedef struct rt_transport rt_transport_t; /* a plugin's table, below */

/* Errors are negative; rt_services_t.strerror names them. */
enum {
    RT_OK = 0,
    RT_EINVAL = -1,          /* malformed input */
    RT_ETOPIC = -2,          /* invalid topic (400 invalid_topic) */
    RT_EID = -3,             /* malformed id or cursor (400 invalid_id) */
    RT_ETOOMANY = -4,        /* too many topics in one subscription (400 too_many_topics) */
    RT_EUNAUTHORIZED = -5,   /* no or bad credentials (401 unauthorized) */
    RT_EFORBIDDEN = -6,      /* credentials do not allow it (403 forbidden) */
    RT_ESLOW = -7,           /* outbound queue over limits.max_queue_bytes */
    RT_ECLOSED = -8,         /* the subscriber is closing */
    RT_EUNAVAILABLE = -9,    /* the bus is down (503 unavailable) */
    RT_ENOMEM = -10,         /* out of memory */
    RT_ETOOLARGE = -11,      /* over limits.max_message_bytes (413 too_large) */
    RT_EEVENT = -12,         /* invalid event name (400 invalid_event) */
    RT_ERATELIMIT = -13,     /* over a rate limit (429 rate_limited) */
    RT_EUNKNOWN = -14,       /* no answer from the bus: the message may or may not be stored (503 unavailable) */
};

/* Why the broker ends a subscriber (rt_transport_t.end). */
typedef enum rt_end_reason {
    RT_END_SHUTDOWN = 1, /* the server is draining: say goodbye (SSE rt.shutdown, WS 1001) */
    RT_END_SLOW = 2,     /* the outbound queue overflowed (WS 1013, SSE stream end) */
    RT_END_EXPIRED = 3,  /* the credentials expired (SSE rt.expired, WS 4001) */
    /* the server API disconnected it (POST /api/disconnect): sub_disconnect_info says why and whether the client may
     * reconnect (WS 4000 / 4010, SSE rt.disconnect, NDJSON {"type":"disconnect"}, long-poll "disconnect") */
    RT_END_DISCONNECT = 4,
} rt_end_reason_t;

/* Flags of a message (rt_msg_view_t.flags). */
enum {
    RT_MSG_JSON = 1,      /* published as application/json and the body is valid JSON */
    RT_MSG_UTF8 = 2,      /* the body is valid UTF-8 */
    RT_MSG_EPHEMERAL = 4, /* not stored, no id */
    RT_MSG_JOIN = 8,      /* a presence join (also EPHEMERAL): data is {"topic","user","client","info"}, event "rt.join" */
    RT_MSG_LEAVE = 16,    /* a presence leave, likewise with event "rt.leave" */
    /* a notice of the server (also EPHEMERAL): data is a JSON object, event "rt.TYPE"; its envelope is
     * {"type":"TYPE",...data's members} (e.g. TYPE subscribed / unsubscribed, from the server API) */
    RT_MSG_NOTICE = 32,
    /* a copy of a topic's latest retained message sent to a new subscriber first (topics: recover: latest); its
     * envelope has "latest": true */
    RT_MSG_LATEST = 64,
};

/* Flags of rt_services_t.presence_join. */
enum {
    RT_PRESENCE_LINGER = 1, /* stay a member for presence.poll_grace after the subscriber ends (long-poll) */
};

/* A read-only view of a message; the slices live as long as the message. */
typedef struct rt_msg_view {
    rt_str_t id;           /* "EPOCH:SEQ"; empty for ephemeral messages */
    rt_str_t topic;        /* the exact topic it was published to */
    rt_str_t event;        /* event name; empty when none */
    rt_str_t content_type; /* the publisher's Content-Type; empty when none */
    rt_str_t data;         /* the payload, verbatim */
    uint64_t seq;          /* SEQ of the id; 0 for ephemeral messages */
    uint32_t flags;        /* RT_MSG_* */
} rt_msg_view_t;

/* Options of rt_services_t.subscribe. */
typedef struct rt_sub_opts {
    const rt_str_t *topics; /* topic patterns (wildcards allowed) */
    size_t ntopics;         /* number of patterns, 1..limits.max_topics */
    rt_str_t since;         /* resume after this id; empty = start now */
    size_t max_replay;      /* deliver at most this many retained messages; 0 = no bound */
} rt_sub_opts_t;

/* A publish from a connection (rt_services_t.publish). Slices are copied before publish returns. */
typedef struct rt_pub {
    rt_str_t topic;           /* an exact topic */
    rt_str_t event;           /* event name or empty */
    rt_str_t content_type;    /* e.g. "application/json", or empty */
    rt_str_t data;            /* the payload */
    rt_str_t idempotency_key; /* or empty */
    int ephemeral;            /* 1: to current subscribers only, never stored, no id */
} rt_pub_t;

/* One member of a JSON object (rt_services_t.json_object). */
typedef struct rt_json_field {
    rt_str_t key;   /* the key's bytes between the quotes (escapes not decoded) */
    rt_str_t value; /* the raw JSON value */
    char type;      /* 's' string, 'n' number, 'o' object, 'a' array, 't' true, 'f' false, 'z' null */
} rt_json_field_t;

/* Plugin configuration keys, declared by the plugin and validated by the broker's
 * config loader under the plugin's section (e.g. `sse.heartbeat`, env RTB_SSE_HEARTBEAT). */
typedef enum rt_cfg_type {
    RT_CFG_INT = 1,      /* integer */
    RT_CFG_DURATION = 2, /* "250ms", "15s", "2m", "1h"; read in milliseconds */
    RT_CFG_SIZE = 3,     /* "65536", "64KiB", "1MiB"; read in bytes */
    RT_CFG_BOOL = 4,     /* true/false; read as 1/0 */
    RT_CFG_STRING = 5,   /* read with cfg_string */
} rt_cfg_type_t;

typedef struct rt_cfg_key {
    const char *name;          /* key inside the plugin's section, e.g. "heartbeat" */
    rt_cfg_type_t type;        /* how the value is parsed and checked */
    const char *default_value; /* the value when absent, in config syntax */
    int64_t min, max;          /* inclusive bounds for numeric types (in ms / bytes) */
} rt_cfg_key_t;

/* Services the broker offers a plugin. Pointer is valid for the process lifetime. */
typedef struct rt_services {
    uint32_t abi_version; /* RT_PLUGIN_ABI_VERSION of the broker */

    /* --- configuration (any thread) --- */
    int64_t (*cfg_int)(const char *section, const char *name);          /* numeric key; durations in ms, sizes in bytes */
    rt_str_t (*cfg_string)(const char *section, const char *name);      /* string key */
    const char *(*strerror)(int err);                                   /* "invalid_topic", ... for an RT_E* code */
    void (*log)(int level, const char *plugin, const char *fmt, ...)    /* level 0 error, 1 warn, 2 info, 3 debug */
        __attribute__((format(printf, 3, 4)));

    /* --- requests (worker thread) --- */
    rt_str_t (*req_method)(rt_request_t *req);
    rt_str_t (*req_path)(rt_request_t *req);                            /* path without the query */
    rt_str_t (*req_header)(rt_request_t *req, const char *name);        /* first value of a header, lower-case name; empty if absent */
    int (*req_query)(rt_request_t *req, const char *name, size_t nth, rt_str_t *out); /* nth value (0-based), decoded; 1 found, 0 not */
    /* The topics of a subscribe request: `/sub/{topic}` or every `topic=` query value.
     * Fills up to max slices (valid until the request ends); returns the count or RT_ETOPIC / RT_ETOOMANY. */
    int (*req_topics)(rt_request_t *req, rt_str_t *out, size_t max);
    /* The resume point: Last-Event-ID header, or query lastEventId= / since= / cursor=; empty if none. */
    rt_str_t (*req_since)(rt_request_t *req);
    /* Answer with the JSON error body of the API for an RT_E* code (status chosen from it); message NULL: the
     * broker's standard message for the code. */
    void (*respond_error)(rt_request_t *req, int err, const char *message);
    /* Answer with a body (copied). */
    void (*respond)(rt_request_t *req, int status, const char *content_type, const char *body, size_t len);

    /* --- subscribers (worker thread) ---
     * Lifecycle: sub_open → subscribe (replay is delivered through deliver, maybe at once) →
     * live deliver... → the broker calls `release` exactly once when the subscriber is gone
     * (client closed, sub_close, or the request ended). After release the handle is dead. */
    rt_sub_t *(*sub_open)(rt_request_t *req, const rt_transport_t *tp, size_t data_size); /* zeroed plugin data of data_size */
    void *(*sub_data)(rt_sub_t *sub);                                   /* the plugin's data area */
    rt_request_t *(*sub_request)(rt_sub_t *sub);                        /* the request it was opened on */
    int (*subscribe)(rt_sub_t *sub, const rt_sub_opts_t *opts);         /* authorize and subscribe; RT_E* on refusal */
    /* id of the last message delivered or skipped past; valid until the next call. Every message handed to
     * `deliver` counts as delivered: a plugin that leaves some out must hand back the id of the last it kept. */
    rt_str_t (*sub_cursor)(rt_sub_t *sub);
    /* Streaming: status and headers, sent with the first bytes written (write something at once, like SSE's
     * ": ok", so that the client learns it is subscribed). headers: NULL-terminated name, value pairs. */
    int (*stream_start)(rt_sub_t *sub, int status, const char *const *headers);
    /* Queue bytes behind the message's lifetime (no copy; msg may be NULL for static bytes). RT_ESLOW when the
     * queue would exceed limits.max_queue_bytes: the broker then ends the subscriber with RT_END_SLOW. */
    int (*write_ref)(rt_sub_t *sub, rt_str_t bytes, rt_msg_t *msg);
    int (*write_copy)(rt_sub_t *sub, const char *bytes, size_t len);    /* queue a copy */
    void (*sub_close)(rt_sub_t *sub);                                   /* end the stream once queued bytes are out */
    /* Answer a held (not streaming) subscriber once with a body (copied), then close it. */
    void (*sub_respond)(rt_sub_t *sub, int status, const char *content_type, const rt_str_t *parts, size_t nparts);
    /* One-shot timer per slot (0 or 1); re-arm from the callback to repeat; ms 0 = next loop turn (or, while a
     * replay the bus completes later is due, right after it); cb NULL cancels. */
    void (*sub_timer)(rt_sub_t *sub, int slot, uint64_t ms, void (*cb)(rt_sub_t *sub));
    /* Take over the connection (HTTP/1.1 only): answer 101 with these headers (NULL-terminated pairs); from then on
     * the transport's `receive` gets the client's raw bytes and write_ref/write_copy send raw bytes; sub_close closes
     * the connection once queued bytes are out. The request is gone after this call: read what you need first. */
    int (*upgrade)(rt_sub_t *sub, const char *const *headers);
    int (*unsubscribe)(rt_sub_t *sub, rt_str_t pattern);                /* RT_EINVAL when not subscribed to it */
    /* Publish on behalf of the connection, with the same checks as POST /pub. RT_OK: `done` follows (maybe before this
     * returns) with the id or an error; otherwise the refusal is returned and *why says why. `arg` must be NULL or
     * malloc'd: when the connection ends before the answer, `done` is not called and the broker frees `arg`. */
    int (*publish)(rt_sub_t *sub, const rt_pub_t *pub, const char **why,
                   void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg), void *arg);
    /* Replace the connection's credentials with a token (refresh, or a first authentication). Subscriptions the
     * new token no longer covers are dropped (transport `dropped` is called for each). RT_OK or RT_EUNAUTHORIZED
     * with *why. */
    int (*authenticate)(rt_sub_t *sub, rt_str_t token, const char **why);
    /* RT_OK when the connection's credentials are usable (a valid token, or none where anonymous access opens
     * something); RT_EUNAUTHORIZED when it presented a bad token; 1 when it has no token and anonymous access
     * opens nothing to subscribe, so it must authenticate. */
    int (*sub_auth_state)(rt_sub_t *sub);

    /* --- messages (worker thread) --- */
    void (*msg_view)(rt_msg_t *msg, rt_msg_view_t *out);
    rt_msg_t *(*msg_ref)(rt_msg_t *msg);                                /* keep a message beyond the callback */
    void (*msg_unref)(rt_msg_t *msg);                                   /* drop a reference taken with msg_ref */
    /* The JSON envelope {"id","topic","event","data"[,"encoding"][,"content_type"]}, built once per message. */
    rt_str_t (*msg_envelope)(rt_msg_t *msg);
    /* The bytes a plugin encoded for this message in its cache slot (0..cache_slots-1), encoding them once with
     * `encode` (which returns malloc'd bytes the broker frees). Shared by all subscribers. These bytes, and those of
     * msg_envelope, stay valid while the caller holds a reference to the message (the callback's, msg_ref, or the
     * one write_ref keeps): once only the history holds a message its encodings are dropped (made again on need). */
    rt_str_t (*msg_encoded)(rt_msg_t *msg, const rt_transport_t *tp, int slot,
                            rt_str_t (*encode)(rt_msg_t *msg, int slot));
    void (*count_delivered)(const rt_transport_t *tp, size_t messages, size_t bytes); /* for /metrics */

    /* --- text helpers (any thread) --- */
    int (*utf8_valid)(const char *bytes, size_t len);                  /* 1 when valid UTF-8 */
    /* Splits a JSON object (validated strictly, nesting bounded) into at most max members; the count, or
     * RT_EINVAL when the text is not one valid JSON object or has more than max members. */
    int (*json_object)(rt_str_t json, rt_json_field_t *fields, size_t max);
    /* Decodes a JSON string value (with its quotes) into out; the length, or RT_EINVAL when it does not fit. */
    int (*json_unescape)(rt_str_t value, char *out, size_t cap);

    /* --- presence (worker thread; appended to ABI 1: plugins built before never call them) ---
     * Join the presence of an exact topic the subscriber is subscribed to: its identity (the token's `sub` and
     * `rt.info`, or anonymous) becomes a member with the connection's client id, and from now on the subscriber
     * also gets that topic's join and leave messages (RT_MSG_JOIN / RT_MSG_LEAVE) through `deliver`. It leaves
     * when that subscription ends. client: the key a long-poll client hands back (sub_client_key) or empty for a
     * new id. RT_OK, RT_ETOPIC (a pattern), RT_EINVAL (not subscribed to it) or RT_EID (client is not a key this
     * cluster gave to this user). */
    int (*presence_join)(rt_sub_t *sub, rt_str_t topic, rt_str_t client, int flags);
    /* presence_join for the topics subscribed from the request that its query names: `presence=1` (all of them)
     * or `presence=TOPIC` (repeatable), with `client=` (the key a long-poll client hands back; read only with
     * RT_PRESENCE_LINGER). Call after subscribe, while the request exists. 0 when not asked, 1 when joined,
     * RT_ETOPIC when a named topic is a pattern or not subscribed, RT_EID when client= is not a key this cluster
     * gave to this user (nothing joined). */
    int (*presence_request)(rt_sub_t *sub, int flags);
    /* The snapshot JSON {"topic","count","users":[{"user","clients","info"}],"anonymous"} of an exact topic, if
     * the subscriber's credentials allow subscribing to it; valid until the next call on this thread.
     * RT_OK, RT_ETOPIC, RT_EUNAUTHORIZED or RT_EFORBIDDEN. */
    int (*presence_snapshot)(rt_sub_t *sub, rt_str_t topic, rt_str_t *json);
    rt_str_t (*sub_client)(rt_sub_t *sub); /* the connection's client id once it joined a presence; else empty */
    /* Appended to ABI 1 (after sub_client): the key that continues this member on a later request (`client=`,
     * long-poll): the client id and a MAC binding it to the user. Empty before a join. */
    rt_str_t (*sub_client_key)(rt_sub_t *sub);

    /* --- request bodies (worker thread; appended to ABI 1) ---
     * The request's body, fully received (at most the server's entity limit, limits.max_message_bytes x 2 + 1 MiB);
     * valid until the request ends. Only plugins exporting RT_TRANSPORT_ANY_METHOD see requests other than GET. */
    rt_str_t (*req_body)(rt_request_t *req);

    /* --- held answers (worker thread; appended to ABI 1) ---
     * The subscriber's one answer (sub_respond) will be `status` (200: the only one taken for now) with these
     * headers (NULL-terminated pairs; the content type among them) and comes within within_ms. On HTTP/1.1 the
     * broker may send the head now and let the request go, so that a held request costs about what an idle
     * WebSocket does; sub_respond then sends the body (with another status it closes the connection instead).
     * RT_OK when it did; RT_EINVAL when the request stays as it was (HTTP/2, a token that expires before
     * within_ms, another status, ...). Either way answer with sub_respond. */
    int (*sub_hold)(rt_sub_t *sub, uint64_t within_ms, int status, const char *const *headers);

    /* --- cluster MACs (any thread; appended to ABI 1) ---
     * HMAC-SHA256 over `context`, a NUL and `data`, keyed by presence.client_secret (the same on every node, so
     * any node checks what another signed; a random key of this process when unset), as 32 hex digits and a NUL
     * in out. The context keeps one use's MACs from passing for another's. */
    void (*mac)(const char *context, rt_str_t data, char out[33]);

    /* --- backend hooks (worker thread; appended to ABI 1) ---
     * Before subscribing a live connection to a topic (e.g. a `sub` op), ask the application backend when
     * proxy.subscribe is configured. 0: no proxy, subscribe now. 1: `done` follows (maybe before this returns) with
     * RT_OK — then call subscribe from within `done` — or the refusal (RT_EUNAUTHORIZED, RT_EFORBIDDEN, RT_ERATELIMIT,
     * RT_EUNAVAILABLE) and the backend's reason. `arg` must be NULL or malloc'd: when the connection ends before the
     * answer, `done` is not called and the broker frees `arg`. With proxy.subscribe configured, a subscribe made
     * outside such a `done` (or a request the broker asked about before `start`) is refused with RT_EFORBIDDEN. */
    int (*subscribe_ask)(rt_sub_t *sub, rt_str_t topic, void (*done)(rt_sub_t *sub, int err, const char *why, void *arg),
                         void *arg);

    /* --- server API (worker thread; appended to ABI 1) ---
     * The connection can carry subscriptions the server adds (POST /api/subscribe): its messages name their topic and
     * it shows notices (RT_MSG_NOTICE). Call once the connection is set up (rt.v1 WebSocket, SSE with envelopes). */
    void (*sub_accept_server_topics)(rt_sub_t *sub);
    /* After end(RT_END_DISCONNECT): {"reason":TEXT|null,"reconnect":true|false} (valid while the subscriber lives);
     * the return value is 1 when the client may reconnect, 0 when told not to. */
    int (*sub_disconnect_info)(rt_sub_t *sub, rt_str_t *json);
    /* The next subscribe also sends a `recover: latest` topic's latest message when the resume point given is at or
     * after it (a client that resumes every subscription from one cursor, like realtime.js, and may never have seen it;
     * rt.v1 "latest": true, SSE latest=1). Without a resume point it is sent anyway. */
    void (*sub_want_latest)(rt_sub_t *sub);
} rt_services_t;

/* The table a plugin exports as `rt_transport_v1`. */
struct rt_transport {
    uint32_t abi_version;      /* must be RT_PLUGIN_ABI_VERSION */
    const char *name;          /* short name; also its config section and metrics label */
    const char *const *paths;  /* explicit paths it serves (e.g. "/sse"), NULL-terminated; may be NULL */
    const rt_cfg_key_t *config; /* its config keys, terminated by a zero entry; may be NULL */
    int cache_slots;           /* message encoding cache slots it uses (0..4) */

    int (*init)(const rt_services_t *svc);                /* main thread, after config; non-zero refuses to start */
    /* Negotiation on /sub/...: a priority > 0 to take the request, 0 to pass. Highest wins. */
    int (*claims)(rt_request_t *req);
    void (*start)(rt_request_t *req);                      /* take the request: answer it or open a subscriber */
    void (*deliver)(rt_sub_t *sub, rt_msg_t *msg);         /* a message for the subscriber, in SEQ order, once */
    void (*gap)(rt_sub_t *sub, rt_str_t from);             /* before a replay: the history from `from` is incomplete */
    void (*end)(rt_sub_t *sub, rt_end_reason_t why);       /* the broker wants it ended: say goodbye, then sub_close */
    void (*release)(rt_sub_t *sub);                        /* the subscriber is gone; free what the data area holds */
    /* Upgraded connections only: the bytes received so far; return how many were consumed (the rest is offered
     * again with more). May be NULL for transports that never upgrade. */
    size_t (*receive)(rt_sub_t *sub, const char *bytes, size_t len);
    /* Optional: the credentials expire in seconds_left (sent once, at most 60 s before); refresh or be ended. */
    void (*expiring)(rt_sub_t *sub, int64_t seconds_left);
    /* Optional: a refresh dropped this subscription (the new token does not cover it). */
    void (*dropped)(rt_sub_t *sub, rt_str_t pattern);
    void (*fini)(void);                                    /* main thread, at exit; may be NULL */
};

/* Optional second export (appended to ABI 1): `const uint32_t rt_transport_v1_flags`, a set of these bits. A plugin
 * that does not export it gets 0. */
enum {
    /* Its explicit paths take every method (POST, PUT...), not only GET/HEAD: `start` reads req_method and answers
     * what it does not take (405). OPTIONS preflights and the Origin check stay the broker's. */
    RT_TRANSPORT_ANY_METHOD = 1,
};

/* The first delay of a repeating heartbeat: the interval less 0 to 7 32nds of it, chosen by the subscriber's
 * address, so that subscribers that connected together (a reconnect storm, a load test) do not all get their
 * heartbeat in the same loop turn; re-arming at the full interval keeps them apart. Eight delays at most: the
 * broker keeps one timer list per distinct duration. */
static inline uint64_t rt_heartbeat_first_ms(uint64_t interval_ms, const rt_sub_t *sub)
{
    uint64_t h = (uint64_t)(uintptr_t)sub * 0x9E3779B97F4A7C15ull;
    return interval_ms - interval_ms * (h >> 61) / 32;
}

#endif
