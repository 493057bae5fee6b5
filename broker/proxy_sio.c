/*
 * The connect proxy and Socket.IO's polling sessions: an Engine.IO session spans many HTTP requests (each poll, each
 * POST of packets, the upgrade), and the backend is asked once for it. This table keeps each session's verdict (the
 * identity granted, or the refusal) by its sid for the session's later requests; a request that comes while another
 * of its session asks waits for that answer. Any worker may serve any request of a session: the table is shared.
 */
#include "proxy.h"

#include <pthread.h>
#include <stdlib.h>

#include "config.h"
#include "http.h"
#include "hub.h"
#include "text.h"

#define NBUCKETS 1024
#define MAX_ENTRIES 65536
#define IDLE_MS 120000 /* a live polling session makes a request at least every socketio.ping_interval */
#define WAIT_STEP_MS 5

enum { PENDING, DONE };

typedef struct entry {
    struct entry *next;
    char sid[RT_PROXY_SID_MAX + 1];
    int state;
    int err;            /* DONE: RT_OK or the refusal */
    rt_ident_t *grant;  /* DONE and allowed: the identity granted, or NULL (the request's own credentials) */
    uint64_t last_used;
} entry_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *buckets[NBUCKETS];
static size_t nentries;
static uint64_t last_sweep;

static size_t bucket_of(rt_str_t sid)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sid.len; i++)
        h = (h ^ (unsigned char)sid.base[i]) * 16777619u;
    return h % NBUCKETS;
}

static entry_t **find(rt_str_t sid)
{
    entry_t **p = &buckets[bucket_of(sid)];
    while (*p && !rt_str_eqc(sid, (*p)->sid))
        p = &(*p)->next;
    return p;
}

static void entry_drop(entry_t **p)
{
    entry_t *e = *p;
    *p = e->next;
    rt_ident_free(e->grant);
    free(e);
    nentries--;
}

/* Drops sessions idle past IDLE_MS (at most once a second; lock held). A pending entry whose asker vanished without
 * forgetting it cannot happen, but goes the same way. */
static void sweep(uint64_t now)
{
    if (now - last_sweep < 1000)
        return;
    last_sweep = now;
    for (size_t b = 0; b < NBUCKETS; b++)
        for (entry_t **p = &buckets[b]; *p;)
            if (now - (*p)->last_used > IDLE_MS)
                entry_drop(p);
            else
                p = &(*p)->next;
}

/* A copy of an identity the backend granted (one allocation per subscriber, as the gate gives). */
static rt_ident_t *ident_copy(const rt_ident_t *g)
{
    if (g == NULL)
        return NULL;
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"sub\":[");
    for (size_t i = 0; i < g->nsub; i++) {
        rt_buf_appendc(&b, i ? "," : "");
        rt_json_append_string(&b, rt_cstr(g->sub_pats[i]));
    }
    rt_buf_appendc(&b, "],\"pub\":[");
    for (size_t i = 0; i < g->npub; i++) {
        rt_buf_appendc(&b, i ? "," : "");
        rt_json_append_string(&b, rt_cstr(g->pub_pats[i]));
    }
    rt_buf_appendc(&b, "]");
    if (g->info) {
        rt_buf_appendc(&b, ",\"info\":");
        rt_buf_appendc(&b, g->info);
    }
    rt_buf_append(&b, "}", 2);
    rt_ident_t *id = rt_ident_new(g->user[0] ? g->user : NULL, g->exp_ms, b.base);
    id->proxied = g->proxied;
    rt_buf_free(&b);
    return id;
}

int rt_proxy_sio_poll(h2o_req_t *req)
{
    rt_str_t t, sid;
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) && rt_req_query(req, "sid", 0, &sid) &&
           rt_req_query(req, "transport", 0, &t) && rt_str_eqc(t, "polling");
}

/* A request waiting for the answer another request of its session is getting. Checked every few milliseconds on its
 * own worker: the answer may come on another. The anchor lives in the request's pool (the client may go away). */
typedef struct sio_wait {
    h2o_req_t *req;
    const rt_transport_t *tp;
    struct sio_wait **anchor;
    h2o_timeout_entry_t timer;
    uint64_t deadline;
    char sid[RT_PROXY_SID_MAX + 1];
} sio_wait_t;

static void on_wait_req_gone(void *p)
{
    sio_wait_t *w = *(sio_wait_t **)p;
    if (w == NULL)
        return;
    h2o_timeout_unlink(&w->timer);
    free(w);
}

/* The session's verdict when known: 1 with *err and *grant (a copy) set, 0 while asked, -1 when not in the table. */
static int verdict_of(rt_str_t sid, uint64_t now, int *err, rt_ident_t **grant)
{
    entry_t *e = *find(sid);
    if (e == NULL)
        return -1;
    if (e->state == PENDING)
        return 0;
    if (e->grant && e->grant->exp_ms && (int64_t)rt_wall_ms() >= e->grant->exp_ms) {
        entry_drop(find(sid)); /* past expire_at: the session's next request asks again */
        return -1;
    }
    e->last_used = now;
    *err = e->err;
    *grant = ident_copy(e->grant);
    return 1;
}

static void on_wait_tick(h2o_timeout_entry_t *t)
{
    sio_wait_t *w = H2O_STRUCT_FROM_MEMBER(sio_wait_t, timer, t);
    int err = RT_OK;
    rt_ident_t *grant = NULL;
    uint64_t now = rt_now_ms();
    pthread_mutex_lock(&lock);
    int known = verdict_of(rt_cstr(w->sid), now, &err, &grant);
    pthread_mutex_unlock(&lock);
    if (known == 0 && now < w->deadline) {
        h2o_timeout_link(rt_current_worker->ctx.loop, rt_worker_timeout(rt_current_worker, WAIT_STEP_MS), &w->timer);
        return;
    }
    h2o_req_t *req = w->req;
    const rt_transport_t *tp = w->tp;
    *w->anchor = NULL;
    free(w);
    if (known == 1)
        rt_proxy_start(req, tp, err, grant, err == RT_OK && rt_proxy_sio_poll(req));
    else if (known == 0) /* the other request's call outlived proxy.timeout: this one fails as a slow backend does */
        rt_proxy_start(req, tp, RT_EUNAVAILABLE, NULL, 0);
    else
        rt_proxy_request(req, tp); /* the asker went away: this request asks */
}

int rt_proxy_sio_lookup(h2o_req_t *req, const rt_transport_t *tp, rt_str_t sid)
{
    if (sid.len == 0 || sid.len > RT_PROXY_SID_MAX)
        return -1;
    int err = RT_OK;
    rt_ident_t *grant = NULL;
    uint64_t now = rt_now_ms();
    pthread_mutex_lock(&lock);
    sweep(now);
    int known = verdict_of(sid, now, &err, &grant), kept = known < 0 && nentries < MAX_ENTRIES;
    if (kept) { /* this request asks; the session's others wait for its answer */
        entry_t *e = rt_calloc(1, sizeof(*e));
        memcpy(e->sid, sid.base, sid.len);
        e->state = PENDING;
        e->last_used = now;
        entry_t **p = &buckets[bucket_of(sid)];
        e->next = *p;
        *p = e;
        nentries++;
    }
    pthread_mutex_unlock(&lock);
    if (known < 0)
        return kept ? 0 : -1;
    if (known == 1) {
        rt_proxy_start(req, tp, err, grant, err == RT_OK && rt_proxy_sio_poll(req));
        return 1;
    }
    sio_wait_t *w = rt_calloc(1, sizeof(*w));
    w->req = req, w->tp = tp;
    memcpy(w->sid, sid.base, sid.len);
    w->deadline = now + (uint64_t)rt_cfg_int("proxy.timeout") + 1000;
    w->timer.cb = on_wait_tick;
    w->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*w->anchor), on_wait_req_gone);
    *w->anchor = w;
    h2o_timeout_link(rt_current_worker->ctx.loop, rt_worker_timeout(rt_current_worker, WAIT_STEP_MS), &w->timer);
    return 1;
}

void rt_proxy_sio_keep(const char *sid, const rt_proxy_verdict_t *v, const rt_ident_t *grant)
{
    rt_ident_t *copy = v->err == RT_OK ? ident_copy(grant) : NULL;
    pthread_mutex_lock(&lock);
    entry_t *e = *find(rt_cstr(sid));
    if (e) {
        e->state = DONE;
        e->err = v->err;
        e->grant = copy;
        e->last_used = rt_now_ms();
        copy = NULL;
    }
    pthread_mutex_unlock(&lock);
    rt_ident_free(copy);
}

void rt_proxy_sio_forget(const char *sid)
{
    pthread_mutex_lock(&lock);
    entry_t **p = find(rt_cstr(sid));
    if (*p && (*p)->state == PENDING)
        entry_drop(p);
    pthread_mutex_unlock(&lock);
}
