/*
 * The NATS bus's parts and their shared state (internal to bus_nats*.c): the connection
 * and stream (bus_nats.c), live delivery that follows this node's interest
 * (bus_nats_live.c) and history fetched from JetStream on demand (bus_nats_fetch.c).
 */
#ifndef RT_BUS_NATS_H
#define RT_BUS_NATS_H

#include <nats/nats.h>
#include <pthread.h>

#include "bus.h"
#include "map.h"

typedef struct pending pending_t;
typedef struct nb_job nb_job_t;
typedef struct nb_cache nb_cache_t;

/* One topic or pattern this node's clients want live: a core subscription on `<live>.<pattern>`. */
typedef struct nb_interest {
    size_t count;          /* subscriptions across workers */
    natsSubscription *sub, *eph; /* stored (re-published) and ephemeral messages */
    int active;            /* a flush after the SUB came back: the server has it */
    uint64_t gen;          /* when its SUB was made (natsbus_t.interest_gen) */
    uint64_t head;         /* the stream's last SEQ when a replay for it last completed */
    char pattern[];
} nb_interest_t;

typedef struct natsbus {
    rt_bus_t super;
    pthread_mutex_t lock; /* guards everything below but the interest map; nats.c threads take it briefly */
    pthread_cond_t wake;
    pthread_t thread;     /* connects, checks the stream, fails publishes whose ack never came */
    natsOptions *opts;
    natsConnection *nc;
    jsCtx *js;
    char node[16];        /* random: this process, in ephemeral message ids */
    uint64_t eph_sent;
    uint64_t eph_recent[64]; /* hashes of the last ephemeral ids received */
    size_t eph_next;
    rt_map_t pending;     /* natsMsg pointer bytes -> pending_t */
    char epoch[16];
    char prefix[128], stream[128], live[140];
    int connected, stream_ok, stopping;
    unsigned checks;
    uint64_t known_seq;   /* the highest SEQ of this epoch seen (acks, live, checks): an ack at or below it means a new stream */
    uint64_t epoch_seq;   /* the stream's last SEQ when we learned its epoch */
    pending_t **held;     /* acks whose SEQ went backwards: answered once the epoch is checked */
    size_t nheld;
    uint64_t pub_count, pub_latency_us;
    /* live (bus_nats_live.c) */
    pthread_mutex_t interest_lock; /* the interest map; never taken by nats.c's threads */
    rt_map_t interest;    /* pattern -> nb_interest_t */
    uint64_t interest_gen; /* SUBs made so far */
    rt_map_t subjects;    /* topic -> last SEQ handed to the workers (as a pointer-sized integer) */
    uint64_t live_seq;    /* the highest SEQ handed to the workers */
    pthread_t live_thread;
    pthread_cond_t live_wake;
    natsMsg **queue;      /* re-published messages, in arrival order */
    size_t qlen, qcap;
    struct nb_held *hold; /* received, waiting for what re-publish may still bring before them (SEQ order) */
    size_t nhold, holdcap;
    uint64_t reorder_ms;  /* nats.reorder_window */
    uint64_t reordered, late, late_max_ms;
    int live_closed;      /* stopped: the queue is gone */
    uint64_t msgs_in, missed, caught_up;
    /* fetch (bus_nats_fetch.c) */
    pthread_t fetch_thread;
    pthread_cond_t fetch_wake;
    nb_job_t *jobs, *jobs_tail;
    uint64_t fetches, fetch_us, fetched_msgs, replays_local;
    uint64_t fetch_hist[8]; /* reads from JetStream by duration (bus_nats_fetch.c's buckets) */
    nb_cache_t *cache;    /* bus_nats_cache.c */
} natsbus_t;

/* bus_nats.c: under nb->lock, wait on cv for at most ms. */
void rt_nats_wait(natsbus_t *nb, pthread_cond_t *cv, long ms);
/* Stop: wake the thread (on cv) and join it. */
void rt_nats_join(natsbus_t *nb, pthread_cond_t *cv, pthread_t thread);
/* A message of the stream (stream or re-published) as a broker message with its id; NULL if its
 * subject is not a topic. */
rt_msg_t *rt_nats_msg(natsbus_t *nb, natsMsg *m, uint64_t seq, const char *epoch);
void rt_nats_on_ephemeral(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure);
/* The stream's first and last SEQ; RT_OK or RT_EUNAVAILABLE. */
int rt_nats_stream_state(natsbus_t *nb, uint64_t *first, uint64_t *last);

/* bus_nats_live.c */
void rt_nats_live_start(natsbus_t *nb);
void rt_nats_live_stop(natsbus_t *nb);
void rt_nats_interest(rt_bus_t *bus, rt_str_t pattern, int delta);
void rt_nats_live_reset(natsbus_t *nb); /* under nb->lock: a new epoch; catch up from SEQ 0 */
void rt_nats_live_lost(natsbus_t *nb);  /* the connection was lost: catch up before delivering further */
void rt_nats_live_metrics(natsbus_t *nb, rt_buf_t *out);
/* 1 if every pattern has an active interest (a replay from now can be answered at once). */
int rt_nats_interest_active(natsbus_t *nb, const rt_str_t *patterns, size_t n);
/* Subscribes again what nats.c refused; the generation of the SUBs made so far if some interest is not known
 * active yet, else 0. rt_nats_interest_confirm(gen) after the server answered a request sent after them. */
uint64_t rt_nats_interest_unconfirmed(natsbus_t *nb);
void rt_nats_interest_confirm(natsbus_t *nb, uint64_t gen);
void rt_nats_interest_head(natsbus_t *nb, const rt_str_t *patterns, size_t n, uint64_t head);

/* bus_nats_fetch.c */
void rt_nats_fetch_start(natsbus_t *nb);
void rt_nats_fetch_stop(natsbus_t *nb);
int rt_nats_replay(rt_bus_t *bus, rt_replay_t *r, rt_replay_cb cb, void *ctx);
/* Every message matching filter with from <= SEQ <= to stored at or after not_before_ns (0: any), appended to *msgs
 * (at most max, 0 = no bound; *more set if there were more). RT_OK or RT_EUNAVAILABLE. */
int rt_nats_fetch_range(natsbus_t *nb, const char *filter, uint64_t from, uint64_t to, int64_t not_before_ns, size_t max,
                        rt_msg_t ***msgs, size_t *n, size_t *cap, int *more);
void rt_nats_fetch_metrics(natsbus_t *nb, rt_buf_t *out);

/* bus_nats_cache.c (history.cache_bytes) */
void rt_nats_cache_init(natsbus_t *nb);
void rt_nats_cache_free(natsbus_t *nb);
int rt_nats_cache_enabled(natsbus_t *nb);
void rt_nats_cache_clear(natsbus_t *nb);
/* DELETE /api/history: drops the topic's entry; how many messages it held. */
size_t rt_nats_cache_forget(natsbus_t *nb, rt_str_t topic);
/* Appends the cached messages of topic with from <= SEQ <= to (at most max; *more if there were more).
 * 1: that is all of them (a hit); 0: all of them up to *upto (>= from - 1), what follows is not known here;
 * -1: nothing is known here (a miss). */
int rt_nats_cache_get(natsbus_t *nb, const char *epoch, rt_str_t topic, uint64_t from, uint64_t to, size_t max,
                      rt_msg_t ***msgs, size_t *n, size_t *cap, int *more, uint64_t *upto);
void rt_nats_cache_count(natsbus_t *nb, int hit);
/* Every message of topic in the stream with from <= SEQ <= to is in msgs (ascending). */
void rt_nats_cache_put(natsbus_t *nb, const char *epoch, rt_str_t topic, uint64_t from, uint64_t to, rt_msg_t *const *msgs,
                       size_t n);
/* A live message; prev: its topic's previous SEQ in the stream (Nats-Last-Sequence). */
void rt_nats_cache_live(natsbus_t *nb, const char *epoch, rt_msg_t *msg, uint64_t prev);
void rt_nats_cache_metrics(natsbus_t *nb, rt_buf_t *out);

#endif
