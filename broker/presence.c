/*
 * Presence (see presence.h). A topic keeps the cluster view (member key -> member, with
 * the number of sources reporting it: this node and each other node) and this node's
 * own members. A member key is user + US + client, so a client id can only ever stand
 * for the user that holds it. Join and leave messages are made when a member enters or
 * leaves the view, so every node sends the same events whichever node the client is on.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "config.h"
#include "hub.h"
#include "map.h"
#include "presence.h"
#include "text.h"
#include "webhook.h"

typedef struct member { /* one client in the cluster view of a topic */
    char *key;           /* user US client */
    rt_str_t user, client;
    char *info;          /* JSON object or NULL */
    unsigned sources;
} member_t;

typedef struct local { /* one client of this node */
    char *key;
    unsigned conns;
    int linger;
    uint64_t linger_until; /* while conns is 0 */
} local_t;

typedef struct ptopic {
    char *name;
    rt_map_t view, local;
    int dirty;
} ptopic_t;

typedef struct contrib { /* what another node reported for a topic */
    char *topic;
    uint64_t version;
    char **keys;
    size_t n;
} contrib_t;

typedef struct pnode {
    char *id;
    uint64_t last_seen;
    rt_map_t topics; /* topic -> contrib_t */
} pnode_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rt_map_t topics, nodes;
static char node_id[16];
static atomic_ulong next_client;
static uint64_t poll_grace_ms, next_version;
static size_t nlinger;
static void (*on_change)(void);
static atomic_ulong joins, leaves, members;

int rt_presence_init(char *err, size_t errlen)
{
    rt_random_token(node_id, 8);
    poll_grace_ms = (uint64_t)rt_cfg_int("presence.poll_grace");
    next_version = rt_wall_ms() * 1000; /* above any version an earlier process with this id could have used */
    return rt_presence_client_init(err, errlen);
}

const char *rt_presence_node(void) { return node_id; }

void rt_presence_new_client(char *out)
{
    snprintf(out, RT_CLIENT_MAX + 1, "%s-%lx", node_id, (unsigned long)atomic_fetch_add(&next_client, 1) + 1);
}

int rt_presence_client_ok(rt_str_t s)
{
    if (s.len == 0 || s.len > RT_CLIENT_MAX)
        return 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

void rt_presence_on_change(void (*fn)(void))
{
    pthread_mutex_lock(&lock);
    on_change = fn;
    pthread_mutex_unlock(&lock);
}

static char *make_key(rt_str_t user, rt_str_t client)
{
    char *k = rt_malloc(user.len + client.len + 2);
    if (user.len)
        memcpy(k, user.base, user.len);
    k[user.len] = '\x1f';
    if (client.len)
        memcpy(k + user.len + 1, client.base, client.len);
    k[user.len + 1 + client.len] = '\0';
    return k;
}

static ptopic_t *topic_get(rt_str_t name, int create)
{
    ptopic_t *t = rt_map_get(&topics, name);
    if (t == NULL && create) {
        t = rt_calloc(1, sizeof(*t));
        t->name = rt_strndup(name);
        rt_map_put(&topics, rt_cstr(t->name), t);
    }
    return t;
}

static void topic_maybe_free(ptopic_t *t)
{
    if (t->view.count || t->local.count || t->dirty)
        return;
    rt_map_del(&topics, rt_cstr(t->name));
    rt_map_free(&t->view);
    rt_map_free(&t->local);
    free(t->name);
    free(t);
}

static void emit(ptopic_t *t, const member_t *m, int join)
{
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "{\"topic\":");
    rt_json_append_string(&b, rt_cstr(t->name));
    rt_buf_appendc(&b, ",\"user\":");
    if (m->user.len)
        rt_json_append_string(&b, m->user);
    else
        rt_buf_appendc(&b, "null");
    rt_buf_appendc(&b, ",\"client\":");
    rt_json_append_string(&b, m->client);
    rt_buf_appendc(&b, ",\"info\":");
    rt_buf_appendc(&b, m->info ? m->info : "null");
    rt_buf_appendc(&b, "}");
    rt_msg_t *msg = rt_msg_new(rt_cstr(t->name), rt_cstr(join ? "rt.join" : "rt.leave"), rt_cstr("application/json"),
                               rt_str(b.base, b.len));
    msg->flags |= RT_MSG_EPHEMERAL | (join ? RT_MSG_JOIN : RT_MSG_LEAVE);
    rt_hub_broadcast(msg); /* under the lock: every worker sees one member's events in order */
    rt_msg_unref(msg);
    rt_buf_free(&b);
    atomic_fetch_add(join ? &joins : &leaves, 1);
}

static void view_add(ptopic_t *t, const char *key, rt_str_t user, rt_str_t client, rt_str_t info)
{
    member_t *m = rt_map_get(&t->view, rt_cstr(key));
    if (m) {
        m->sources++;
        return;
    }
    m = rt_calloc(1, sizeof(*m));
    m->key = rt_strndup(rt_cstr(key));
    m->user = rt_str(m->key, user.len);
    m->client = rt_str(m->key + user.len + 1, client.len);
    m->info = info.len ? rt_strndup(info) : NULL;
    m->sources = 1;
    rt_map_put(&t->view, rt_cstr(m->key), m);
    atomic_fetch_add(&members, 1);
    emit(t, m, 1);
}

static void view_del(ptopic_t *t, const char *key)
{
    member_t *m = rt_map_get(&t->view, rt_cstr(key));
    if (m == NULL || --m->sources > 0)
        return;
    rt_map_del(&t->view, rt_cstr(key));
    atomic_fetch_sub(&members, 1);
    emit(t, m, 0);
    free(m->info);
    free(m->key);
    free(m);
}

static void local_changed(ptopic_t *t)
{
    t->dirty = 1;
    if (on_change)
        on_change();
}

void rt_presence_join(rt_str_t topic, rt_str_t user, rt_str_t client, rt_str_t info, int linger)
{
    char *key = make_key(user, client);
    pthread_mutex_lock(&lock);
    ptopic_t *t = topic_get(topic, 1);
    local_t *l = rt_map_get(&t->local, rt_cstr(key));
    if (l) {
        if (l->conns++ == 0 && l->linger_until) {
            l->linger_until = 0;
            nlinger--;
        }
        l->linger |= linger;
        free(key);
    } else {
        l = rt_calloc(1, sizeof(*l));
        l->key = key;
        l->conns = 1;
        l->linger = linger;
        rt_map_put(&t->local, rt_cstr(key), l);
        rt_webhook_presence(1, rt_cstr(t->name), user, client, info); /* once, by the member's own node */
        view_add(t, key, user, client, info);
        local_changed(t);
    }
    pthread_mutex_unlock(&lock);
}

static void local_remove(ptopic_t *t, local_t *l)
{
    rt_map_del(&t->local, rt_cstr(l->key));
    const member_t *m = rt_map_get(&t->view, rt_cstr(l->key));
    if (m)
        rt_webhook_presence(0, rt_cstr(t->name), m->user, m->client, m->info ? rt_cstr(m->info) : rt_str(NULL, 0));
    view_del(t, l->key);
    local_changed(t);
    free(l->key);
    free(l);
}

void rt_presence_leave(rt_str_t topic, rt_str_t user, rt_str_t client)
{
    char *key = make_key(user, client);
    pthread_mutex_lock(&lock);
    ptopic_t *t = topic_get(topic, 0);
    local_t *l = t ? rt_map_get(&t->local, rt_cstr(key)) : NULL;
    if (l && l->conns > 0 && --l->conns == 0) {
        if (l->linger && poll_grace_ms) {
            l->linger_until = rt_now_ms() + poll_grace_ms;
            nlinger++;
        } else {
            local_remove(t, l);
            topic_maybe_free(t);
        }
    }
    pthread_mutex_unlock(&lock);
    free(key);
}

void rt_presence_tick(void)
{
    pthread_mutex_lock(&lock);
    if (nlinger) {
        uint64_t now = rt_now_ms();
        ptopic_t **ts = NULL;
        local_t **ls = NULL;
        size_t n = 0, i = 0;
        for (rt_map_entry_t *e = NULL; (e = rt_map_next(&topics, e, &i)) != NULL;) {
            ptopic_t *t = e->value;
            size_t j = 0;
            for (rt_map_entry_t *le = NULL; (le = rt_map_next(&t->local, le, &j)) != NULL;) {
                local_t *l = le->value;
                if (l->conns == 0 && l->linger_until && l->linger_until <= now) {
                    ts = rt_realloc(ts, (n + 1) * sizeof(*ts));
                    ls = rt_realloc(ls, (n + 1) * sizeof(*ls));
                    ts[n] = t;
                    ls[n++] = l;
                }
            }
        }
        for (size_t k = 0; k < n; k++) { /* removed after the walk: removing frees map entries */
            nlinger--;
            local_remove(ts[k], ls[k]);
        }
        for (size_t k = 0; k < n; k++)
            if (k + 1 == n || ts[k + 1] != ts[k])
                topic_maybe_free(ts[k]); /* a topic's locals are listed together */
        free(ts);
        free(ls);
    }
    pthread_mutex_unlock(&lock);
}

/* ---------- snapshot ---------- */

typedef struct user_row {
    rt_str_t user;
    const char *info;
    unsigned clients;
} user_row_t;

static int row_cmp(const void *a, const void *b)
{
    const user_row_t *x = a, *y = b;
    size_t n = x->user.len < y->user.len ? x->user.len : y->user.len;
    int c = memcmp(x->user.base, y->user.base, n);
    return c ? c : (x->user.len > y->user.len) - (x->user.len < y->user.len);
}

void rt_presence_snapshot(rt_str_t topic, rt_buf_t *out)
{
    pthread_mutex_lock(&lock);
    ptopic_t *t = topic_get(topic, 0);
    size_t cap = t ? t->view.count : 0, nrows = 0, anonymous = 0;
    user_row_t *rows = rt_malloc((cap ? cap : 1) * sizeof(*rows));
    rt_map_t by_user = {0};
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; t && (e = rt_map_next(&t->view, e, &i)) != NULL;) {
        member_t *m = e->value;
        if (m->user.len == 0) {
            anonymous++;
            continue;
        }
        uintptr_t at = (uintptr_t)rt_map_get(&by_user, m->user); /* row index + 1 */
        if (at == 0) {
            rows[nrows++] = (user_row_t){m->user, m->info, 0};
            at = nrows;
            rt_map_put(&by_user, m->user, (void *)at);
        }
        user_row_t *r = &rows[at - 1];
        r->clients++;
        if (r->info == NULL)
            r->info = m->info;
    }
    qsort(rows, nrows, sizeof(*rows), row_cmp);
    rt_buf_appendc(out, "{\"topic\":");
    rt_json_append_string(out, topic);
    rt_buf_printf(out, ",\"count\":%zu,\"users\":[", nrows + anonymous);
    for (size_t k = 0; k < nrows; k++) {
        rt_buf_appendc(out, k ? ",{\"user\":" : "{\"user\":");
        rt_json_append_string(out, rows[k].user);
        rt_buf_printf(out, ",\"clients\":%u,\"info\":%s}", rows[k].clients, rows[k].info ? rows[k].info : "null");
    }
    rt_buf_printf(out, "],\"anonymous\":%zu}", anonymous);
    pthread_mutex_unlock(&lock);
    rt_map_free(&by_user);
    free(rows);
}

void rt_presence_metrics(rt_buf_t *out)
{
    rt_buf_printf(out,
                  "# HELP rtbroker_presence_members Presence members in the cluster view (one per client and topic).\n"
                  "# TYPE rtbroker_presence_members gauge\nrtbroker_presence_members %lu\n"
                  "# HELP rtbroker_presence_events_total Join and leave events made.\n"
                  "# TYPE rtbroker_presence_events_total counter\n"
                  "rtbroker_presence_events_total{type=\"join\"} %lu\nrtbroker_presence_events_total{type=\"leave\"} %lu\n",
                  (unsigned long)atomic_load(&members), (unsigned long)atomic_load(&joins),
                  (unsigned long)atomic_load(&leaves));
}

/* ---------- other nodes ---------- */

static pnode_t *node_get(rt_str_t id)
{
    pnode_t *n = rt_map_get(&nodes, id);
    if (n == NULL) {
        n = rt_calloc(1, sizeof(*n));
        n->id = rt_strndup(id);
        rt_map_put(&nodes, rt_cstr(n->id), n);
    }
    return n;
}

static void contrib_drop(contrib_t *c)
{
    ptopic_t *t = topic_get(rt_cstr(c->topic), 0);
    for (size_t i = 0; i < c->n; i++) {
        if (t)
            view_del(t, c->keys[i]);
        free(c->keys[i]);
    }
    if (t)
        topic_maybe_free(t);
    free(c->keys);
    c->keys = NULL;
    c->n = 0;
}

static void seen(pnode_t *pn, uint64_t age_ms)
{
    uint64_t now = rt_now_ms(), at = age_ms < now ? now - age_ms : 0;
    if (at > pn->last_seen)
        pn->last_seen = at;
}

void rt_presence_remote(rt_str_t node, rt_str_t topic, uint64_t version, uint64_t age_ms, const rt_presence_member_t *m,
                        size_t n)
{
    pthread_mutex_lock(&lock);
    pnode_t *pn = node_get(node);
    seen(pn, age_ms);
    contrib_t *c = rt_map_get(&pn->topics, topic);
    if (c && version <= c->version) {
        pthread_mutex_unlock(&lock);
        return;
    }
    if (c == NULL) {
        c = rt_calloc(1, sizeof(*c));
        c->topic = rt_strndup(topic);
        rt_map_put(&pn->topics, rt_cstr(c->topic), c);
    }
    c->version = version;
    ptopic_t *t = topic_get(topic, 1);
    char **keys = rt_malloc((n ? n : 1) * sizeof(*keys));
    size_t nk = 0;
    rt_map_t fresh = {0}, old = {0};
    for (size_t i = 0; i < c->n; i++)
        rt_map_put(&old, rt_cstr(c->keys[i]), c->keys[i]);
    for (size_t i = 0; i < n; i++) {
        char *k = make_key(m[i].user, m[i].client);
        if (rt_map_get(&fresh, rt_cstr(k))) {
            free(k); /* listed twice */
            continue;
        }
        keys[nk++] = k;
        rt_map_put(&fresh, rt_cstr(k), k);
        if (rt_map_get(&old, rt_cstr(k)) == NULL)
            view_add(t, k, m[i].user, m[i].client, m[i].info);
    }
    for (size_t i = 0; i < c->n; i++) {
        if (rt_map_get(&fresh, rt_cstr(c->keys[i])) == NULL)
            view_del(t, c->keys[i]);
        free(c->keys[i]);
    }
    rt_map_free(&fresh);
    rt_map_free(&old);
    free(c->keys);
    c->keys = keys;
    c->n = nk;
    topic_maybe_free(t);
    pthread_mutex_unlock(&lock);
}

void rt_presence_remote_seen(rt_str_t node, uint64_t age_ms)
{
    pthread_mutex_lock(&lock);
    seen(node_get(node), age_ms);
    pthread_mutex_unlock(&lock);
}

void rt_presence_expire_nodes(uint64_t ttl_ms)
{
    pthread_mutex_lock(&lock);
    uint64_t now = rt_now_ms();
    size_t i = 0;
    pnode_t **dead = NULL;
    size_t ndead = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&nodes, e, &i)) != NULL;) {
        pnode_t *pn = e->value;
        if (now - pn->last_seen > ttl_ms) {
            dead = rt_realloc(dead, (ndead + 1) * sizeof(*dead));
            dead[ndead++] = pn;
        }
    }
    for (size_t k = 0; k < ndead; k++) {
        pnode_t *pn = dead[k];
        rt_log(RT_LOG_INFO, "presence: node %s not seen for %llu ms: its members leave", pn->id,
               (unsigned long long)(now - pn->last_seen));
        size_t j = 0;
        for (rt_map_entry_t *e = NULL; (e = rt_map_next(&pn->topics, e, &j)) != NULL;) {
            contrib_t *c = e->value;
            contrib_drop(c);
        }
        contrib_t **cs = rt_malloc((pn->topics.count + 1) * sizeof(*cs));
        size_t nc = 0;
        j = 0;
        for (rt_map_entry_t *e = NULL; (e = rt_map_next(&pn->topics, e, &j)) != NULL;)
            cs[nc++] = e->value;
        rt_map_free(&pn->topics);
        for (size_t c = 0; c < nc; c++) {
            free(cs[c]->topic);
            free(cs[c]);
        }
        free(cs);
        rt_map_del(&nodes, rt_cstr(pn->id));
        free(pn->id);
        free(pn);
    }
    free(dead);
    pthread_mutex_unlock(&lock);
}

void rt_presence_collect(int all, void (*fn)(void *ctx, rt_str_t topic, rt_str_t value), void *ctx)
{
    rt_buf_t b = {0}; /* topic NUL value NUL, for each: fn runs after the lock is released */
    size_t count = 0;
    pthread_mutex_lock(&lock);
    ptopic_t **done = NULL;
    size_t i = 0;
    for (rt_map_entry_t *e = NULL; (e = rt_map_next(&topics, e, &i)) != NULL;) {
        ptopic_t *t = e->value;
        if (!t->dirty && !(all && t->local.count))
            continue;
        rt_buf_append(&b, t->name, strlen(t->name) + 1);
        rt_buf_printf(&b, "{\"v\":%llu,\"m\":[", (unsigned long long)++next_version);
        size_t j = 0, k = 0;
        for (rt_map_entry_t *le = NULL; (le = rt_map_next(&t->local, le, &j)) != NULL;) {
            local_t *l = le->value;
            member_t *m = rt_map_get(&t->view, rt_cstr(l->key));
            if (m == NULL)
                continue;
            rt_buf_appendc(&b, k++ ? ",[" : "[");
            rt_json_append_string(&b, m->client);
            rt_buf_appendc(&b, ",");
            if (m->user.len)
                rt_json_append_string(&b, m->user);
            else
                rt_buf_appendc(&b, "null");
            rt_buf_appendc(&b, ",");
            rt_buf_appendc(&b, m->info ? m->info : "null");
            rt_buf_appendc(&b, "]");
        }
        rt_buf_append(&b, "]}", 3);
        t->dirty = 0;
        done = rt_realloc(done, (count + 1) * sizeof(*done));
        done[count++] = t;
    }
    for (size_t k = 0; k < count; k++)
        topic_maybe_free(done[k]);
    pthread_mutex_unlock(&lock);
    free(done);
    const char *p = b.base;
    for (size_t k = 0; k < count; k++) {
        size_t tl = strlen(p);
        const char *v = p + tl + 1;
        size_t vl = strlen(v);
        fn(ctx, rt_str(p, tl), rt_str(v, vl));
        p = v + vl + 1;
    }
    rt_buf_free(&b);
}
