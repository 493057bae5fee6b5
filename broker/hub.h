/*
 * Workers and their hubs: each worker is one thread with its own h2o context, inbox
 * of published messages, subscription index and subscribers. This header is the core's
 * view; plugins see subscribers only through plugin.h.
 */
#ifndef RT_HUB_H
#define RT_HUB_H

#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <pthread.h>

#include "bus.h"
#include "jwtauth.h"
#include "ratelimit.h"
#include "index.h"
#include "message.h"

typedef struct rt_timer_list {
    uint64_t ms;
    h2o_timeout_t timeout;
} rt_timer_list_t;

/* A FIFO of closures (hub_inbox.c). */
typedef struct rt_taskq {
    struct rt_task *head, **tail;
} rt_taskq_t;

typedef struct rt_worker {
    int id;
    pthread_t tid;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t **listeners;
    size_t nlisteners;
    /* inbox: messages from the bus, drained on this thread */
    h2o_multithread_receiver_t receiver;
    h2o_multithread_message_t wake_msg, shutdown_msg;
    pthread_mutex_t inbox_lock;
    rt_msg_t **inbox, **draining;
    size_t inbox_len, inbox_cap, draining_cap;
    struct rt_task *tasks;  /* closures posted by other threads (bus completions) */
    int wake_pending;
    /* subscribers */
    rt_index_t index;
    h2o_linklist_t subs;
    size_t nsubs;
    rt_timer_list_t **timers;
    size_t ntimers;
    h2o_timeout_entry_t tick;
    int shutting_down;
    h2o_linklist_t *expiry_slots; /* subscribers by the second their token's next step is due (hub_expiry.c) */
    int64_t expiry_sec;           /* the second the last walk reached */
    unsigned ticks;
    rt_map_t watched;       /* socket pointer -> subscriber (hub_watch.c) */
    /* while a batch of messages is dispatched, subscribers written to are flushed once at its end */
    int batching;
    struct rt_sub **to_flush;
    size_t nto_flush, to_flush_cap;
    size_t flush_next;           /* to_flush[flush_next..] are still due: a slice is flushed per loop turn */
    h2o_socket_t *flush_wake;    /* an eventfd: readable while slices are left, so the loop comes back at once */
    int flush_woken;
    /* answers held for pacing (rt_hub_pace): until this worker has dispatched its inbox, then until it has
     * written its slices, then until every other worker has done the same */
    rt_taskq_t after_inbox, after_flush, after_all;
    h2o_timeout_entry_t recheck;
    uint64_t slice_turns;        /* turns of the loop that left slices for the next */
    _Atomic int behind;          /* slices are left: read by the other workers */
    _Atomic uint64_t msgs_in, msgs_done; /* messages put in the inbox, and dispatched (their first slice written) */
    _Atomic int wants_wake;      /* after_all waits for another worker, which posts a look again here on catching up */
    rt_buf_t scratch;       /* answers handed to plugins "until the next call on this thread" */
    uint64_t shutdown_deadline;
} rt_worker_t;

typedef struct rt_outq_entry {
    h2o_iovec_t iov;
    rt_msg_t *msg; /* reference keeping iov alive, or NULL */
    char *owned;   /* malloc'd copy, or NULL */
} rt_outq_entry_t;

typedef struct rt_outq {
    rt_outq_entry_t *v;
    size_t len, cap, bytes;
} rt_outq_t;

typedef struct rt_sub_presence rt_sub_presence_t;

/* Mind its size: with the WebSocket plugin's data, 544 bytes fall in a glibc size class that keeps an idle
 * connection at about 1.2 KB; at 560 it took about 180 bytes more each (S5, tests/bench). */
struct rt_sub {
    h2o_generator_t gen;   /* first: h2o calls proceed/stop with it */
    rt_worker_t *w;
    h2o_req_t *req;        /* NULL once the request is gone (always, after an upgrade) */
    rt_sub_t **anchor;     /* in the request's pool: tells us when the request is disposed */
    h2o_socket_t *sock;    /* the upgraded connection */
    const rt_transport_t *tp;
    h2o_linklist_t link;   /* in w->subs */
    rt_subscription_t **subs;
    size_t nsubs;
    uint64_t last_seq;     /* highest SEQ delivered or known not to match */
    const rt_msg_t *last_ephemeral; /* compared only, never dereferenced */
    rt_outq_t pending, inflight;
    rt_outq_t deferred;    /* written while a subscribe waits for its replay: goes out after it */
    unsigned replays_due;  /* subscribes whose replay the bus completes later */
    h2o_timeout_entry_t timers[2], end_timer, close_timer;
    void (*timer_cb[2])(rt_sub_t *sub);
    rt_ident_t *ident;     /* the verified token's grants, or NULL (anonymous) */
    int auth_err;          /* the request carried a bad token: every subscribe is refused */
    unsigned holds;        /* rt_sub_hold count: the memory stays until it is 0 */
    h2o_linklist_t expiry_link; /* in a slot of w->expiry_slots while its token will expire */
    rt_bucket_t pub_bucket; /* publishes from this connection */
    rt_sub_presence_t *pres; /* its presence identity, once it joined one */
    h2o_socket_t *watched;   /* the HTTP/1 connection we read for EOF while h2o does not (hub_watch.c) */
    union { /* one pointer, to keep the size above (api_local.c) */
        void *user_slot; /* its entry in limits.connections_per_user's count, or NULL */
        char *end_json;  /* once disconnected by the server API (the count given back): {"reason","reconnect"} */
    };
    uint32_t discarded;      /* upgraded: bytes dropped since the close was queued */
    unsigned streaming : 1, sending : 1, final_queued : 1, final_sent : 1, stopped : 1, ending : 1, closed : 1, responded : 1;
    unsigned upgrading : 1, upgraded : 1, flush_due : 1, expiry_noticed : 1, end_reason : 3, replaying : 1;
    unsigned cursor_held : 1; /* the first replay is due: cursor[] is where it starts (the since given, or now) */
    unsigned timer_after_replay : 2; /* zero-delay timers (per slot) asked for while a replay was due: run after it */
    unsigned chunked : 1;  /* a handed-over HTTP/1.1 response (SSE, ndjson, held long-poll): writes are chunks of its body */
    unsigned held : 1, keep_alive : 1; /* a held answer (200) handed over: head sent; h2o gets the connection back after it */
    unsigned server_topics : 1, granting : 1, reconnect : 1; /* server API: takes its subscriptions; one is being added */
    unsigned disconnected : 1; /* by the server API: end_json is set */
    unsigned want_latest : 1; /* the next subscribe sends recover: latest topics' latest even after a resume point (hub_ns.c) */
    char cursor[RT_ID_MAX + 1];
    _Alignas(16) char data[];
};

extern rt_worker_t *rt_workers;
extern size_t rt_nworkers;
extern rt_bus_t *rt_bus;
extern __thread rt_worker_t *rt_current_worker;

void rt_hub_init_worker(rt_worker_t *w);
/* Any thread: hand a message to every worker (takes a reference per worker). */
void rt_hub_broadcast(rt_msg_t *msg);
/* Called once every worker's inbox exists; broadcasts before that are dropped. */
void rt_hub_set_ready(void);
/* Any thread: the history was lost (a new epoch): every subscription continues from SEQ 0 of the new history,
 * after a gap notice from its cursor in the old one. */
void rt_hub_reset_all(rt_str_t old_epoch);
/* Any thread: run fn(arg) on worker w's thread soon. */
void rt_hub_post(rt_worker_t *w, void (*fn)(void *arg), void *arg);
/* Keep a subscriber's memory past its end (for an operation that completes later); rt_sub_put drops it. */
void rt_sub_hold(rt_sub_t *sub);
void rt_sub_put(rt_sub_t *sub);
/* On its way out (ending, closing, or its end scheduled, e.g. as a slow consumer): nothing more is encoded for it. */
static inline int rt_sub_winding_down(rt_sub_t *sub)
{
    return sub->ending || sub->closed || sub->stopped || sub->final_queued || h2o_timeout_is_linked(&sub->end_timer);
}
/* Worker thread: stop accepting and end every subscriber. */
void rt_hub_shutdown(rt_worker_t *w);

/* services for plugins (plugin.c exposes them in rt_services_t) */
rt_sub_t *rt_sub_open(rt_request_t *req, const rt_transport_t *tp, size_t data_size);
void *rt_sub_data(rt_sub_t *sub);
rt_request_t *rt_sub_request(rt_sub_t *sub);
int rt_sub_subscribe(rt_sub_t *sub, const rt_sub_opts_t *opts);
/* rt_sub_subscribe with the namespaces' recover rules (hub_ns.c): services.subscribe. */
int rt_ns_subscribe(rt_sub_t *sub, const rt_sub_opts_t *opts);
void rt_ns_want_latest(rt_sub_t *sub);
rt_str_t rt_sub_cursor(rt_sub_t *sub);
int rt_sub_stream_start(rt_sub_t *sub, int status, const char *const *headers);
int rt_sub_write_ref(rt_sub_t *sub, rt_str_t bytes, rt_msg_t *msg);
int rt_sub_write_copy(rt_sub_t *sub, const char *bytes, size_t len);
void rt_sub_close(rt_sub_t *sub);
void rt_sub_respond(rt_sub_t *sub, int status, const char *content_type, const rt_str_t *parts, size_t nparts);
void rt_sub_timer(rt_sub_t *sub, int slot, uint64_t ms, void (*cb)(rt_sub_t *sub));
int rt_sub_upgrade(rt_sub_t *sub, const char *const *headers);
int rt_sub_hold_answer(rt_sub_t *sub, uint64_t within_ms, int status, const char *const *headers);
int rt_sub_unsubscribe(rt_sub_t *sub, rt_str_t pattern);
int rt_sub_authenticate(rt_sub_t *sub, rt_str_t token, const char **why);
int rt_sub_auth_state(rt_sub_t *sub);
/* hub_inbox.c */
void rt_hub_inbox_init(rt_worker_t *w);
/* The end of a dispatched batch: flush the subscribers written to during it, a slice per loop turn. */
void rt_hub_end_batch(rt_worker_t *w);
/* Backpressure for the answer to a publish that w took, on w's thread: 0 if it needs none (its topic's subscribers
 * on w take one turn of the loop and no worker has slices left); else 1, and fn(arg) runs once w has dispatched
 * the messages in its inbox and written its slices, and every other worker has done the same (in the order given,
 * on w's thread; at most 250 ms later). rtbroker_publish_paced_total counts those that waited for slices. */
int rt_hub_pace(rt_worker_t *w, rt_str_t topic, void (*fn)(void *arg), void *arg);
/* During a batch, listed for rt_hub_end_batch (one write for all its messages of the batch); else flushed now. */
void rt_sub_flush_soon(rt_sub_t *sub);
/* hub.c: write what the subscriber has waiting, unless a write is in flight. */
void rt_sub_flush(rt_sub_t *sub);

/* presence (hub_presence.c) */
int rt_sub_presence_join(rt_sub_t *sub, rt_str_t topic, rt_str_t client, int flags);
int rt_sub_presence_request(rt_sub_t *sub, int flags);
int rt_sub_presence_snapshot(rt_sub_t *sub, rt_str_t topic, rt_str_t *json);
rt_str_t rt_sub_client(rt_sub_t *sub);
rt_str_t rt_sub_client_key(rt_sub_t *sub);
void rt_sub_presence_left(rt_sub_t *sub, rt_subscription_t *s); /* before a subscription is removed */
void rt_sub_presence_free(rt_sub_t *sub);
/* hub_watch.c: end the subscriber when its HTTP/1 client closes while the request is held */
void rt_sub_watch(rt_sub_t *sub);
void rt_sub_unwatch(rt_sub_t *sub, int stop_reading);
/* hub_expiry.c: the notice before a token's exp and the end at exp, walking only the subscribers due */
int rt_sub_expires(const rt_sub_t *sub);
void rt_sub_expiry_add(rt_sub_t *sub);
void rt_sub_expiry_remove(rt_sub_t *sub);
void rt_hub_expiry_run(rt_worker_t *w, int64_t now);
/* hub.c: what the transport wrote while replays were due goes out behind them, once none is left (rt.v1's "ok"
 * after the replayed messages) */
void rt_sub_undefer(rt_sub_t *sub);
/* Ends the subscriber from the next loop turn (the transport's `end`), never from inside a delivery. */
void rt_sub_schedule_end(rt_sub_t *sub, rt_end_reason_t why);
/* A timeout list of this worker for a duration (created on first use). */
h2o_timeout_t *rt_worker_timeout(rt_worker_t *w, uint64_t ms);

#endif
