/*
 * Messages: one allocation holding the slices, an atomic refcount, and a cache of
 * encodings (one per transport variant) filled lazily by whichever worker needs it
 * first; a lost race frees the loser's copy. Never mutated after the id is set, except
 * that a retained message's encodings are dropped once nobody but its history holds it
 * (they were made for subscribers that have been written to; a later reader re-encodes).
 */
#include <stdlib.h>
#include <strings.h>

#include "message.h"
#include "text.h"

rt_msg_t *rt_msg_new(rt_str_t topic, rt_str_t event, rt_str_t content_type, rt_str_t data)
{
    rt_msg_t *m = rt_calloc(1, sizeof(*m) + topic.len + event.len + content_type.len + data.len + 1);
    atomic_init(&m->refs, 1);
    char *p = m->buf;
#define COPY(field, src)                                                                                                           \
    do {                                                                                                                           \
        if ((src).len)                                                                                                             \
            memcpy(p, (src).base, (src).len);                                                                                      \
        m->field = rt_str(p, (src).len);                                                                                           \
        p += (src).len;                                                                                                            \
    } while (0)
    COPY(topic, topic);
    COPY(event, event);
    COPY(content_type, content_type);
    COPY(data, data);
#undef COPY
    if (rt_utf8_valid(data.base, data.len))
        m->flags |= RT_MSG_UTF8;
    if (content_type.len >= 16 && strncasecmp(content_type.base, "application/json", 16) == 0 &&
        (content_type.len == 16 || content_type.base[16] == ';' || content_type.base[16] == ' ') &&
        rt_json_valid(data.base, data.len))
        m->flags |= RT_MSG_JSON;
    m->time_ms = rt_wall_ms();
    m->id = rt_str(m->idbuf, 0);
    return m;
}

void rt_msg_set_id(rt_msg_t *m, rt_str_t epoch, uint64_t seq)
{
    m->seq = seq;
    m->id = rt_str(m->idbuf, rt_id_format(m->idbuf, epoch, seq));
}

static _Atomic(rt_msg_t *) trim_head;
static atomic_size_t cached_bytes;

static void free_encodings(rt_msg_t *m)
{
    size_t bytes = 0;
    for (int i = 0; i < RT_MSG_CACHE_SLOTS; i++) {
        rt_enc_t *e = atomic_exchange_explicit(&m->cache[i], NULL, memory_order_acq_rel);
        if (e != NULL) {
            bytes += e->len;
            free(e);
        }
    }
    atomic_fetch_sub_explicit(&cached_bytes, bytes, memory_order_relaxed);
}

/* Hands our reference to the trim list; 0 when the message is there already. */
static int queue_for_trim(rt_msg_t *m)
{
    if (atomic_fetch_or_explicit(&m->enc_state, RT_ENC_TRIM_QUEUED, memory_order_acq_rel) & RT_ENC_TRIM_QUEUED)
        return 0;
    rt_msg_t *head = atomic_load_explicit(&trim_head, memory_order_relaxed);
    do
        m->trim_next = head;
    while (!atomic_compare_exchange_weak_explicit(&trim_head, &head, m, memory_order_release, memory_order_relaxed));
    return 1;
}

void rt_msg_unref(rt_msg_t *m)
{
    unsigned r = atomic_load_explicit(&m->refs, memory_order_relaxed);
    for (;;) {
        /* the last reference besides the keeper's: exact (a compare-and-swap, not a subtraction), so that no two
         * holders letting go at once both miss it */
        if (r == 2 && (atomic_load_explicit(&m->enc_state, memory_order_acquire) & RT_ENC_CACHED) &&
            atomic_load_explicit(&m->keeper, memory_order_relaxed) != NULL && queue_for_trim(m))
            return;
        if (atomic_compare_exchange_weak_explicit(&m->refs, &r, r - 1, memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    if (r != 1)
        return;
    free_encodings(m);
    free(m);
}

rt_msg_t *rt_msg_trim_take(void)
{
    if (atomic_load_explicit(&trim_head, memory_order_relaxed) == NULL)
        return NULL;
    return atomic_exchange_explicit(&trim_head, NULL, memory_order_acquire);
}

void rt_msg_trim(rt_msg_t *m, const void *keeper)
{
    atomic_fetch_and_explicit(&m->enc_state, ~(unsigned)RT_ENC_TRIM_QUEUED, memory_order_acq_rel);
    /* the keeper's reference and the list's: no reader holds it, and a new one can only come through the keeper,
     * whose lock the caller holds */
    if (atomic_load_explicit(&m->keeper, memory_order_relaxed) == keeper &&
        atomic_load_explicit(&m->refs, memory_order_acquire) == 2) {
        atomic_fetch_and_explicit(&m->enc_state, ~(unsigned)RT_ENC_CACHED, memory_order_acq_rel);
        free_encodings(m);
    }
    rt_msg_unref(m);
}

size_t rt_msg_cached_bytes(void) { return atomic_load_explicit(&cached_bytes, memory_order_relaxed); }

rt_enc_t *rt_enc_new(const void *bytes, size_t len)
{
    rt_enc_t *e = rt_malloc(sizeof(*e) + len);
    e->len = len;
    if (len)
        memcpy(e->bytes, bytes, len);
    return e;
}

rt_str_t rt_msg_cached(rt_msg_t *m, int slot, rt_enc_t *(*encode)(rt_msg_t *m, void *arg), void *arg)
{
    rt_enc_t *e = atomic_load_explicit(&m->cache[slot], memory_order_acquire);
    if (e == NULL) {
        rt_enc_t *mine = encode(m, arg), *expected = NULL;
        if (atomic_compare_exchange_strong_explicit(&m->cache[slot], &expected, mine, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            e = mine;
            atomic_fetch_add_explicit(&cached_bytes, mine->len, memory_order_relaxed);
            atomic_fetch_or_explicit(&m->enc_state, RT_ENC_CACHED, memory_order_acq_rel);
        } else {
            free(mine);
            e = expected;
        }
    }
    return rt_str(e->bytes, e->len);
}

static rt_enc_t *encode_envelope(rt_msg_t *m, void *arg)
{
    (void)arg;
    rt_buf_t b = {0};
    rt_buf_reserve(&b, sizeof(rt_enc_t) + m->data.len + m->topic.len + 96);
    b.len = sizeof(rt_enc_t); /* build in place after the header */
    if (m->flags & (RT_MSG_JOIN | RT_MSG_LEAVE)) { /* {"type":"join","topic",...}: data is a JSON object */
        rt_buf_appendc(&b, (m->flags & RT_MSG_JOIN) ? "{\"type\":\"join\"," : "{\"type\":\"leave\",");
        rt_buf_append(&b, m->data.base + 1, m->data.len - 1);
        rt_enc_t *e = (rt_enc_t *)b.base;
        e->len = b.len - sizeof(rt_enc_t);
        return e;
    }
    if ((m->flags & RT_MSG_NOTICE) && m->event.len > 3) { /* {"type":"subscribed",...}: event rt.subscribed */
        rt_buf_appendc(&b, "{\"type\":");
        rt_json_append_string(&b, rt_str(m->event.base + 3, m->event.len - 3));
        if (m->data.len > 2)
            rt_buf_appendc(&b, ",");
        rt_buf_append(&b, m->data.base + 1, m->data.len - 1);
        rt_enc_t *e = (rt_enc_t *)b.base;
        e->len = b.len - sizeof(rt_enc_t);
        return e;
    }
    rt_buf_appendc(&b, "{\"id\":");
    if (m->id.len)
        rt_json_append_string(&b, m->id);
    else
        rt_buf_appendc(&b, "null");
    rt_buf_appendc(&b, ",\"topic\":");
    rt_json_append_string(&b, m->topic);
    rt_msg_append_event_data(&b, m);
    if (m->content_type.len && rt_utf8_valid(m->content_type.base, m->content_type.len)) {
        rt_buf_appendc(&b, ",\"content_type\":");
        rt_json_append_string(&b, m->content_type);
    }
    if (m->flags & RT_MSG_LATEST)
        rt_buf_appendc(&b, ",\"latest\":true");
    rt_buf_appendc(&b, "}");
    rt_enc_t *e = (rt_enc_t *)b.base;
    e->len = b.len - sizeof(rt_enc_t);
    return e;
}

void rt_msg_append_event_data(rt_buf_t *b, const rt_msg_t *m)
{
    rt_buf_appendc(b, ",\"event\":");
    if (m->event.len)
        rt_json_append_string(b, m->event);
    else
        rt_buf_appendc(b, "null");
    rt_buf_appendc(b, ",\"data\":");
    if (m->flags & RT_MSG_JSON) {
        rt_json_append_compact(b, m->data);
    } else if (m->flags & RT_MSG_UTF8) {
        rt_json_append_string(b, m->data);
    } else {
        rt_buf_appendc(b, "\"");
        rt_base64_append(b, m->data);
        rt_buf_appendc(b, "\",\"encoding\":\"base64\"");
    }
}

rt_str_t rt_msg_envelope(rt_msg_t *m) { return rt_msg_cached(m, 0, encode_envelope, NULL); }

rt_enc_t *rt_msg_envelope_new(rt_msg_t *m)
{
    rt_enc_t *e = atomic_load_explicit(&m->cache[0], memory_order_acquire);
    return e != NULL ? NULL : encode_envelope(m, NULL);
}
