/*
 * A worker's inbox: messages the bus hands to every worker (rt_hub_broadcast, any
 * thread) and closures other threads post (rt_hub_post), drained on the worker's thread,
 * where each message goes to the local subscribers the index finds, once each; then the
 * subscribers written to are flushed, a slice of them per turn of the loop.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hub.h"
#include "ops.h"

static void dispatch_one(rt_subscription_t *s, void *ctx);
static void run_after_all(rt_worker_t *w);
static int pace_over(const rt_worker_t *w);
static void wake_waiters(rt_worker_t *w);
static void taskq_move(rt_taskq_t *to, rt_taskq_t *from);

/* The longest an answer is held for pacing: publishers that do not wait can keep the workers behind for good. */
#define PACE_MAX_MS 250
/* How often answers waiting for another worker look again if no wake comes. */
#define RECHECK_MS 5

typedef struct rt_task {
    struct rt_task *next;
    void (*fn)(void *arg);
    void *arg;
    /* held for pacing: since when (ms); the worker's slice_turns then; slices were left somewhere then */
    uint64_t since, turns;
    int behind;
} rt_task_t;

void rt_hub_post(rt_worker_t *w, void (*fn)(void *arg), void *arg)
{
    rt_task_t *t = rt_malloc(sizeof(*t));
    t->fn = fn, t->arg = arg;
    pthread_mutex_lock(&w->inbox_lock);
    t->next = w->tasks;
    w->tasks = t;
    if (!w->wake_pending) {
        w->wake_pending = 1;
        h2o_multithread_send_message(&w->receiver, &w->wake_msg);
    }
    pthread_mutex_unlock(&w->inbox_lock);
}

static void run_tasks(rt_task_t *t)
{
    rt_task_t *rev = NULL; /* posted newest first: run in posting order */
    while (t) {
        rt_task_t *next = t->next;
        t->next = rev;
        rev = t;
        t = next;
    }
    while (rev) {
        rt_task_t *next = rev->next;
        rev->fn(rev->arg);
        free(rev);
        rev = next;
    }
}

/* ---------- inbox ---------- */

static atomic_int hub_ready;

void rt_hub_set_ready(void) { atomic_store(&hub_ready, 1); }

void rt_hub_broadcast(rt_msg_t *msg)
{
    if (!atomic_load(&hub_ready))
        return; /* the workers are not running yet: there is no subscriber to tell (history has it) */
    for (size_t i = 0; i < rt_nworkers; i++) {
        rt_worker_t *w = &rt_workers[i];
        pthread_mutex_lock(&w->inbox_lock);
        if (w->inbox_len == w->inbox_cap) {
            w->inbox_cap = w->inbox_cap ? w->inbox_cap * 2 : 256;
            w->inbox = rt_realloc(w->inbox, w->inbox_cap * sizeof(*w->inbox));
        }
        w->inbox[w->inbox_len++] = rt_msg_ref(msg);
        atomic_fetch_add(&w->msgs_in, 1);
        if (!w->wake_pending) {
            w->wake_pending = 1;
            h2o_multithread_send_message(&w->receiver, &w->wake_msg);
        }
        pthread_mutex_unlock(&w->inbox_lock);
    }
}

static void on_inbox(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    rt_worker_t *w = H2O_STRUCT_FROM_MEMBER(rt_worker_t, receiver, receiver);
    int shutdown = 0;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        if (m == &w->shutdown_msg)
            shutdown = 1;
    }
    for (;;) {
        pthread_mutex_lock(&w->inbox_lock);
        rt_msg_t **batch = w->inbox;
        size_t n = w->inbox_len, cap = w->inbox_cap;
        w->inbox = w->draining, w->inbox_cap = w->draining_cap, w->inbox_len = 0;
        rt_task_t *tasks = w->tasks;
        w->tasks = NULL;
        if (n == 0 && tasks == NULL)
            w->wake_pending = 0;
        uint64_t upto = atomic_load(&w->msgs_in); /* all in this batch */
        pthread_mutex_unlock(&w->inbox_lock);
        w->draining = batch, w->draining_cap = cap;
        run_tasks(tasks);
        if (n == 0 && tasks == NULL)
            break;
        w->batching = 1;
        for (size_t i = 0; i < n; i++) {
            rt_index_match(&w->index, batch[i]->topic, dispatch_one, batch[i]);
            rt_msg_unref(batch[i]);
        }
        taskq_move(&w->after_flush, &w->after_inbox); /* their messages were in this batch */
        if (w->nto_flush > w->flush_next) /* never seen idle between the dispatch and the first slice */
            atomic_store(&w->behind, 1);
        atomic_store(&w->msgs_done, upto);
        rt_hub_end_batch(w);
    }
    if (shutdown)
        rt_hub_shutdown(w);
}

/* ---------- flushing a batch, a slice per loop turn ---------- */

/* Subscribers written per turn of the loop. One message to many subscribers is one socket write each (about 10 µs
 * here, mostly the kernel's); done in one turn, it held the loop so that the next publish, arriving meanwhile, was
 * read only after all of them (issue 21: at 100 msg/s to 1,000 subscribers each message waited for the previous
 * one's whole fan-out). Between slices the loop reads what has come in, and a message dispatched then joins the
 * queues of the subscribers not yet written, which get both in one write. */
#define FLUSH_SLICE 128

static void flush_wake(rt_worker_t *w)
{
    if (w->flush_woken)
        return;
    w->flush_woken = 1;
    uint64_t one = 1;
    if (write(h2o_socket_get_fd(w->flush_wake), &one, sizeof(one)) != sizeof(one))
        w->flush_woken = 0; /* cannot happen with an eventfd below its maximum; the next batch flushes on */
}

void rt_sub_flush_soon(rt_sub_t *sub)
{
    rt_worker_t *w = sub->w;
    if (!w->batching) {
        rt_sub_flush(sub);
        return;
    }
    if (sub->flush_due)
        return; /* listed already, maybe from an earlier batch whose slices are not all done */
    sub->flush_due = 1;
    rt_sub_hold(sub);
    if (w->nto_flush == w->to_flush_cap) {
        w->to_flush_cap = w->to_flush_cap ? w->to_flush_cap * 2 : 256;
        w->to_flush = rt_realloc(w->to_flush, w->to_flush_cap * sizeof(*w->to_flush));
    }
    w->to_flush[w->nto_flush++] = sub;
}

void rt_hub_end_batch(rt_worker_t *w)
{
    w->batching = 0;
    size_t end = w->nto_flush - w->flush_next > FLUSH_SLICE ? w->flush_next + FLUSH_SLICE : w->nto_flush;
    while (w->flush_next < end) {
        rt_sub_t *sub = w->to_flush[w->flush_next++];
        sub->flush_due = 0;
        if (!sub->closed)
            rt_sub_flush(sub);
        rt_sub_put(sub);
    }
    if (w->flush_next == w->nto_flush) {
        w->flush_next = w->nto_flush = 0;
        atomic_store(&w->behind, 0);
        wake_waiters(w);
        taskq_move(&w->after_all, &w->after_flush); /* now the other workers': they serve the same publishes */
        run_after_all(w);
        return;
    }
    w->slice_turns++;
    atomic_store(&w->behind, 1);
    if (w->after_flush.head && pace_over(w)) /* fan-outs keep coming: pacing never holds an answer longer */
        run_after_all(w);
    if (w->flush_next >= w->nto_flush - w->flush_next) { /* at least half done: move the rest down (amortised) */
        memmove(w->to_flush, w->to_flush + w->flush_next, (w->nto_flush - w->flush_next) * sizeof(*w->to_flush));
        w->nto_flush -= w->flush_next;
        w->flush_next = 0;
    }
    flush_wake(w);
}

static int behind_here(const rt_worker_t *w) { return w->flush_next < w->nto_flush; }

static int any_behind(void)
{
    for (size_t i = 0; i < rt_nworkers; i++)
        if (atomic_load(&rt_workers[i].behind))
            return 1;
    return 0;
}

static int inbox_pending(rt_worker_t *w) { return atomic_load(&w->msgs_in) != atomic_load(&w->msgs_done); }

/* Whether a worker has messages to dispatch or slices to write. */
static int any_busy(void)
{
    for (size_t i = 0; i < rt_nworkers; i++)
        if (atomic_load(&rt_workers[i].behind) || inbox_pending(&rt_workers[i]))
            return 1;
    return 0;
}

/* ---------- answers held for pacing ---------- */

static void taskq_push(rt_taskq_t *q, rt_task_t *t)
{
    t->next = NULL;
    *(q->tail ? q->tail : &q->head) = t;
    q->tail = &t->next;
}

/* Appends all of from to to. */
static void taskq_move(rt_taskq_t *to, rt_taskq_t *from)
{
    if (from->head == NULL)
        return;
    *(to->tail ? to->tail : &to->head) = from->head;
    to->tail = from->tail;
    from->head = NULL, from->tail = NULL;
}

/* Whether the oldest answer held has waited long enough (the queues' heads; tasks enter them in order). */
static int pace_over(const rt_worker_t *w)
{
    const rt_taskq_t *qs[] = {&w->after_all, &w->after_flush, &w->after_inbox};
    uint64_t now = rt_now_ms();
    for (size_t i = 0; i < sizeof(qs) / sizeof(*qs); i++)
        if (qs[i]->head && now - qs[i]->head->since > PACE_MAX_MS)
            return 1;
    return w->shutting_down;
}

static void on_woken(void *arg) { run_after_all(arg); }

/* w has dispatched what came in and written its slices: the workers whose answers wait for it look again.
 * Sequentially consistent with run_after_all's "wants_wake, then any_busy", so that one of the two sides sees the
 * other. */
static void wake_waiters(rt_worker_t *w)
{
    for (size_t i = 0; i < rt_nworkers; i++) {
        rt_worker_t *x = &rt_workers[i];
        if (x != w && atomic_load(&x->wants_wake) && atomic_exchange(&x->wants_wake, 0))
            rt_hub_post(x, on_woken, x);
    }
}

/* Answers whose fan-out this worker has written go once every worker has dispatched what came in and written its
 * slices; else the last to finish wakes w (the timer is a fallback, for a worker that stopped). Past PACE_MAX_MS
 * everything held goes. */
static void run_after_all(rt_worker_t *w)
{
    int over = pace_over(w);
    if (over) {
        taskq_move(&w->after_all, &w->after_inbox);
        taskq_move(&w->after_all, &w->after_flush);
    }
    if (w->after_all.head == NULL)
        return;
    atomic_store(&w->wants_wake, 1);
    if (!over && any_busy()) {
        if (!h2o_timeout_is_linked(&w->recheck))
            h2o_timeout_link(w->ctx.loop, rt_worker_timeout(w, RECHECK_MS), &w->recheck);
        return;
    }
    atomic_store(&w->wants_wake, 0);
    if (h2o_timeout_is_linked(&w->recheck))
        h2o_timeout_unlink(&w->recheck);
    rt_task_t *t = w->after_all.head;
    w->after_all.head = NULL, w->after_all.tail = NULL;
    while (t) { /* in the order given */
        rt_task_t *next = t->next;
        if (t->behind || t->turns != w->slice_turns) /* it waited for slices, not just for a turn of the loop */
            rt_metrics_publish_paced();
        t->fn(t->arg);
        free(t);
        t = next;
    }
}

static void on_recheck(h2o_timeout_entry_t *entry)
{
    run_after_all(H2O_STRUCT_FROM_MEMBER(rt_worker_t, recheck, entry));
}

int rt_hub_pace(rt_worker_t *w, rt_str_t topic, void (*fn)(void *arg), void *arg)
{
    int behind = any_behind();
    if (!behind && rt_index_exact_count(&w->index, topic) <= FLUSH_SLICE)
        return 0; /* written in the turn that dispatches it, and nothing earlier to wait for */
    rt_task_t *t = rt_malloc(sizeof(*t));
    t->fn = fn, t->arg = arg, t->since = rt_now_ms(), t->turns = w->slice_turns, t->behind = behind;
    if (inbox_pending(w)) /* the message is there, most likely */
        taskq_push(&w->after_inbox, t);
    else if (behind_here(w))
        taskq_push(&w->after_flush, t);
    else {
        taskq_push(&w->after_all, t);
        run_after_all(w);
    }
    return 1;
}

static void on_flush_wake(h2o_socket_t *sock, const char *err)
{
    rt_worker_t *w = sock->data;
    if (err != NULL)
        return; /* an eventfd does not fail; the slices left go out with the next batch */
    h2o_buffer_consume(&sock->input, sock->input->size);
    w->flush_woken = 0;
    if (w->flush_next < w->nto_flush)
        rt_hub_end_batch(w);
}

void rt_hub_inbox_init(rt_worker_t *w)
{
    w->recheck.cb = on_recheck;
    h2o_multithread_register_receiver(w->ctx.queue, &w->receiver, on_inbox);
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        perror("eventfd");
        abort();
    }
    w->flush_wake = h2o_evloop_socket_create(w->ctx.loop, fd, 0);
    w->flush_wake->data = w;
    h2o_socket_read_start(w->flush_wake, on_flush_wake);
}

static void dispatch_one(rt_subscription_t *s, void *ctx)
{
    rt_msg_t *msg = ctx;
    rt_sub_t *sub = s->owner;
    if (msg->flags & RT_MSG_EPHEMERAL) { /* no SEQ: once per connection, never a cursor */
        if ((msg->flags & (RT_MSG_JOIN | RT_MSG_LEAVE)) && !s->presence)
            return; /* presence events go to its members only */
        if (sub->last_ephemeral == msg || rt_sub_winding_down(sub))
            return;
        sub->last_ephemeral = msg;
        sub->tp->deliver(sub, msg);
        return;
    }
    if (msg->seq <= s->last_seq)
        return; /* replayed already, or before this subscription started */
    s->last_seq = msg->seq;
    if (sub->last_seq == msg->seq || rt_sub_winding_down(sub))
        return; /* another of its patterns matched this message, or it is on its way out */
    sub->last_seq = msg->seq;
    sub->tp->deliver(sub, msg);
}

typedef struct reset {
    rt_worker_t *w;
    char old_epoch[RT_EPOCH_MAX + 1];
} reset_t;

/* SEQs start again in a new history: every subscription starts from 0, with a gap notice from its old cursor. */
static void reset_worker(void *arg)
{
    reset_t *r = arg;
    for (h2o_linklist_t *l = r->w->subs.next; l != &r->w->subs; l = l->next) {
        rt_sub_t *sub = H2O_STRUCT_FROM_MEMBER(rt_sub_t, link, l);
        if (sub->ending || sub->closed || sub->nsubs == 0)
            continue;
        char from[RT_ID_MAX + 1];
        size_t n = rt_id_format(from, rt_cstr(r->old_epoch), sub->last_seq);
        for (size_t i = 0; i < sub->nsubs; i++)
            sub->subs[i]->last_seq = sub->subs[i]->from_seq = 0;
        sub->last_seq = 0;
        rt_metrics_replay(1);
        sub->tp->gap(sub, rt_str(from, n));
    }
    free(r);
}

void rt_hub_reset_all(rt_str_t old_epoch)
{
    if (!atomic_load(&hub_ready))
        return;
    for (size_t i = 0; i < rt_nworkers; i++) {
        reset_t *r = rt_calloc(1, sizeof(*r));
        r->w = &rt_workers[i];
        memcpy(r->old_epoch, old_epoch.base, old_epoch.len > RT_EPOCH_MAX ? RT_EPOCH_MAX : old_epoch.len);
        rt_hub_post(&rt_workers[i], reset_worker, r);
    }
}
