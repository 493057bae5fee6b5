/*
 * The bus interface: where published messages get their id, are kept as history, and
 * are handed to every worker's hub. Two implementations: the embedded memory bus and
 * the NATS JetStream bus. Callbacks always run on the calling worker's thread, possibly
 * before the call returns.
 */
#ifndef RT_BUS_H
#define RT_BUS_H

#include "message.h"
#include "rt.h"
#include "topic.h"

typedef struct rt_bus rt_bus_t;

/* A replay request and its result. */
typedef struct rt_replay {
    const rt_str_t *patterns; /* valid topics or patterns */
    size_t npatterns;
    int has_since;            /* 0: start now (no replay) */
    rt_id_t since;            /* resume after this id */
    size_t max;               /* at most this many messages, oldest first; 0 = no bound */
    int has_before;           /* instead of since: the `max` messages just before SEQ `before` (history API) */
    uint64_t before;
    /* results */
    rt_msg_t **msgs;          /* referenced; the caller unrefs each and frees the array */
    size_t count;
    int gap;                  /* history after `since` is incomplete (other epoch, evicted, or unknown) */
    int truncated;            /* more retained messages than max */
    uint64_t head;            /* every matching message with SEQ <= head is in msgs or was before since */
    uint64_t after;           /* msgs are the retained matching messages after this SEQ (0 after a foreign
                               * epoch; head when there is no since) */
    uint64_t pending_head;    /* no since, answered later (RT_REPLAY_PENDING): the SEQ it starts after, set before
                               * replay returns (a cursor asked meanwhile) */
} rt_replay_t;

typedef void (*rt_publish_cb)(void *ctx, int err, rt_str_t id);
/* A replay that completes later: on the worker that asked, with r filled (or err). */
typedef void (*rt_replay_cb)(void *ctx, rt_replay_t *r, int err);

/* replay's answer when cb will be called instead (never a RT_E* code). */
#define RT_REPLAY_PENDING 1

typedef struct rt_bus_ops {
    const char *name;
    int (*start)(rt_bus_t *bus, char *err, size_t errlen); /* main thread, before workers run */
    void (*stop)(rt_bus_t *bus);
    /* Takes the message reference. idem_key: the Idempotency-Key scoped by its publisher (publish.c), or empty;
     * unique per topic. cb gets the id (the first publish's id for a repeated key) once the message is in history. */
    void (*publish)(rt_bus_t *bus, rt_msg_t *msg, rt_str_t idem_key, rt_publish_cb cb, void *ctx);
    /* An ephemeral message (RT_MSG_EPHEMERAL, no id): to every node's current subscribers, never stored. Takes
     * the reference. RT_OK or RT_EUNAVAILABLE. */
    int (*publish_ephemeral)(rt_bus_t *bus, rt_msg_t *msg);
    /* Fills r's results and returns RT_OK or RT_EUNAVAILABLE; or returns RT_REPLAY_PENDING and calls cb(ctx, r, err)
     * later on the calling worker (r and its patterns must stay valid until then). Messages published after the
     * answer's head reach the worker's inbox after cb runs (or after replay returns). */
    int (*replay)(rt_bus_t *bus, rt_replay_t *r, rt_replay_cb cb, void *ctx);
    /* Worker thread: this node's clients want (+1) or no longer want (-1) a topic or pattern live. Taken before the
     * replay that starts a subscription, so that its head is exact. */
    void (*interest)(rt_bus_t *bus, rt_str_t pattern, int delta);
    rt_str_t (*epoch)(rt_bus_t *bus);
    int (*ready)(rt_bus_t *bus);
    void (*tick)(rt_bus_t *bus); /* once a second from one worker: expiry */
    void (*metrics)(rt_bus_t *bus, rt_buf_t *out); /* Prometheus lines */
    /* Drops what this node retains of one topic (DELETE /api/history): resumes from before get a gap. Returns how
     * many messages were dropped. NULL: nothing retained here. */
    size_t (*forget)(rt_bus_t *bus, rt_str_t topic);
} rt_bus_ops_t;

struct rt_bus {
    const rt_bus_ops_t *ops;
};

rt_bus_t *rt_bus_memory_new(void);
rt_bus_t *rt_bus_nats_new(void);
/* n random characters of [a-z2-9] and a NUL into out. */
void rt_random_token(char *out, size_t n);
void rt_replay_release(rt_replay_t *r);

#endif
