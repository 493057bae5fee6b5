/* The immutable, refcounted message shared by all workers, with its per-transport encoding cache. */
#ifndef RT_MESSAGE_H
#define RT_MESSAGE_H

#include <stdatomic.h>

#include "rt.h"
#include "topic.h"

#define RT_MSG_CACHE_SLOTS 16 /* slot 0: the JSON envelope; the rest are handed to plugins */

typedef struct rt_enc {
    size_t len;
    char bytes[];
} rt_enc_t;

struct rt_msg {
    atomic_uint refs;
    uint32_t flags;    /* RT_MSG_* */
    atomic_uint enc_state;        /* RT_ENC_*: whether encodings are cached, whether it waits for a trim */
    _Atomic(const void *) keeper; /* the history retaining it (set and cleared under that history's lock) */
    struct rt_msg *older, *newer; /* the keeper's list of retained messages, oldest first (under its lock) */
    struct rt_msg *trim_next;     /* the list of messages waiting for rt_msg_trim */
    uint64_t seq;      /* 0 until the bus assigns it (and for ephemeral messages) */
    uint64_t time_ms;  /* wall clock at publish */
    rt_str_t id, topic, event, content_type, data;
    char idbuf[RT_ID_MAX + 1];
    _Atomic(rt_enc_t *) cache[RT_MSG_CACHE_SLOTS];
    char buf[]; /* topic, event, content type and data, in one allocation */
};

enum { RT_ENC_CACHED = 1, RT_ENC_TRIM_QUEUED = 2 };

/* A new message (refs 1) with copies of the slices; the bus sets the id. */
rt_msg_t *rt_msg_new(rt_str_t topic, rt_str_t event, rt_str_t content_type, rt_str_t data);
void rt_msg_set_id(rt_msg_t *m, rt_str_t epoch, uint64_t seq);
static inline rt_msg_t *rt_msg_ref(rt_msg_t *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}
/* Drops a reference. When what remains is the keeper's (a history's) and encodings are cached, the reference
 * goes to the list that rt_msg_trim_take hands the keeper instead: then nobody but the keeper can reach the
 * message, so its encodings can go without racing a reader. */
void rt_msg_unref(rt_msg_t *m);
/* The messages waiting for a trim (linked by trim_next), each holding one reference. */
rt_msg_t *rt_msg_trim_take(void);
/* For each taken message, under the lock of the history `keeper`: frees its encodings when that history holds the
 * only other reference, then drops the list's reference. */
void rt_msg_trim(rt_msg_t *m, const void *keeper);
/* Bytes of encodings cached on live messages (for /metrics). */
size_t rt_msg_cached_bytes(void);
/* Cached encoding for slot, computed once by encode (which returns malloc'd rt_enc_t). */
rt_str_t rt_msg_cached(rt_msg_t *m, int slot, rt_enc_t *(*encode)(rt_msg_t *m, void *arg), void *arg);
rt_enc_t *rt_enc_new(const void *bytes, size_t len);
/* `,"event":…,"data":…` as in the envelope (JSON payloads: a value, a string, or base64 with "encoding"). */
void rt_msg_append_event_data(rt_buf_t *b, const rt_msg_t *m);
/* The JSON envelope of API.md, cached in slot 0. */
rt_str_t rt_msg_envelope(rt_msg_t *m);
/* An uncached copy of the envelope for the caller to free, or NULL when it is cached already (use that). */
rt_enc_t *rt_msg_envelope_new(rt_msg_t *m);

#endif
