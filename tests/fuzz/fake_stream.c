/*
 * The fake services of fake_stream.h. What the hub does for these transports, kept to what a plugin can see:
 * requests are real h2o_req_t read by broker/http.c (topics, Last-Event-ID / since / cursor, query values) and
 * auth.c (the token of the request); subscribe checks topics, ids and permissions as the hub does, then sends a
 * gap for a foreign epoch and replays retained messages; presence=, client= are read as hub_presence.c reads them
 * (client= is a client_key checked by presence_client.c, with presence.client_secret set below).
 * Checked on every call: a request is answered once (an error, a stream or a held answer), nothing is written
 * after the end, slices handed over are readable to their end, timers and cache slots are in range.
 * Actions after the request (opcode, length, bytes):
 *   'e' the event name of the next messages (used when it is one a publish could carry)
 *   'm' a message with these bytes as its payload;  'j' the same as application/json;  'x' an ephemeral one
 *   'p' a presence join (leave when the first byte is odd) of the client named by the bytes
 *   'g' a gap notice from this id (when it is one);  't' fire the pending timers;  's' end (byte 0: why)
 */
#include "fake_stream.h"
#include "auth.h"
#include "config.h"
#include "fake_req.h"
#include "http.h"
#include "message.h"
#include "presence.h"
#include "publish.h"
#include "text.h"
#include "topic.h"

extern const rt_transport_t rt_transport_v1;

#define MAX_SUBS 8
#define NRETAINED 3

static struct {
    h2o_req_t req;
    const fuzz_stream_check_t *check;
    int opened, responded, streaming, closed;
    void (*timer[2])(rt_sub_t *sub);
    char subs[MAX_SUBS][RT_TOPIC_MAX + 1];
    size_t nsubs;
    uint64_t last_seq, next_seq;
    char cursor[RT_ID_MAX + 1], client[RT_CLIENT_MAX + 1], key[RT_CLIENT_KEY_MAX + 1];
    int auth_err;
    rt_ident_t *ident;
} st;

static union {
    char bytes[512];
    _Alignas(16) char align;
} area;
static char sub_tag;
static rt_msg_t *retained[NRETAINED];

#define SUB ((rt_sub_t *)&sub_tag)

static h2o_req_t *request(rt_request_t *r)
{
    FUZZ_ASSERT(r == (rt_request_t *)&st.req);
    return &st.req;
}

static int64_t f_cfg_int(const char *section, const char *name)
{
    char path[128];
    if (strcmp(section, "limits") != 0) { /* the plugin's own keys: short times, small batches */
        if (strcmp(name, "max_messages") == 0)
            return 3;
        if (strcmp(name, "timeout") == 0 || strcmp(name, "max_timeout") == 0 || strcmp(name, "heartbeat") == 0)
            return 5000;
        return 1000;
    }
    snprintf(path, sizeof(path), "%s.%s", section, name);
    return rt_cfg_int(path);
}

static void answered(void)
{
    FUZZ_ASSERT(!st.responded && !st.streaming);
    st.responded = 1;
}

static void f_respond_error(rt_request_t *r, int err, const char *message)
{
    request(r);
    FUZZ_ASSERT(err < 0);
    if (message)
        FUZZ_ASSERT(rt_utf8_valid(message, strlen(message)));
    answered();
}

static void f_respond(rt_request_t *r, int status, const char *ctype, const char *body, size_t len)
{
    request(r);
    (void)status, (void)ctype;
    fuzz_touch((rt_str_t){body, len});
    answered();
}

static rt_sub_t *f_sub_open(rt_request_t *r, const rt_transport_t *tp, size_t data_size)
{
    const char *why = NULL;
    FUZZ_ASSERT(tp == &rt_transport_v1 && !st.opened && !st.responded && data_size <= sizeof(area));
    st.opened = 1;
    st.auth_err = rt_auth_identify(request(r), &st.ident, &why); /* as the hub does on open */
    memset(&area, 0, sizeof(area));
    return SUB;
}

static void *f_sub_data(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == SUB && st.opened);
    return &area;
}

static rt_request_t *f_sub_request(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == SUB);
    return (rt_request_t *)&st.req;
}

static void deliver(rt_msg_t *m)
{
    if (st.closed || st.responded)
        return; /* the hub stops delivering to a subscriber that ended */
    if (m->seq > st.last_seq)
        st.last_seq = m->seq;
    rt_transport_v1.deliver(SUB, m);
}

static int f_subscribe(rt_sub_t *sub, const rt_sub_opts_t *o)
{
    rt_id_t id;
    FUZZ_ASSERT(sub == SUB && !st.closed && !st.responded);
    FUZZ_ASSERT(o->ntopics >= 1 && o->ntopics <= (size_t)rt_cfg_int("limits.max_topics"));
    fuzz_touch(o->since);
    if (st.nsubs + o->ntopics > MAX_SUBS)
        return RT_ETOOMANY;
    for (size_t i = 0; i < o->ntopics; i++) {
        fuzz_touch(o->topics[i]);
        if (rt_topic_check(o->topics[i], 1, NULL) != RT_OK)
            return RT_ETOPIC;
        int err = st.auth_err ? st.auth_err : rt_auth_allows(st.ident, o->topics[i], 0);
        if (err != RT_OK)
            return err;
    }
    if (o->since.len && rt_id_parse(o->since, &id) != RT_OK)
        return RT_EID;
    for (size_t i = 0; i < o->ntopics; i++) {
        memcpy(st.subs[st.nsubs], o->topics[i].base, o->topics[i].len);
        st.subs[st.nsubs++][o->topics[i].len] = '\0';
    }
    st.last_seq = NRETAINED;
    if (o->since.len == 0)
        return RT_OK;
    int foreign = !rt_str_eqc(id.epoch, "e1");
    if (foreign || id.seq > NRETAINED)
        rt_transport_v1.gap(SUB, o->since); /* a history we do not have, or one that was reset */
    size_t from = foreign || id.seq > NRETAINED ? 0 : (size_t)id.seq, sent = 0;
    for (size_t i = from; i < NRETAINED && (o->max_replay == 0 || sent < o->max_replay); i++, sent++)
        deliver(retained[i]);
    if (o->max_replay && sent == o->max_replay && from + sent < NRETAINED)
        st.last_seq = from + sent; /* a bounded replay resumes after the last message it handed over */
    return RT_OK;
}

static rt_str_t f_sub_cursor(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == SUB);
    size_t n = rt_id_format(st.cursor, RT_STRLIT("e1"), st.last_seq);
    return (rt_str_t){st.cursor, n};
}

static int f_stream_start(rt_sub_t *sub, int status, const char *const *headers)
{
    FUZZ_ASSERT(sub == SUB && status >= 200 && status < 600);
    for (size_t i = 0; headers && headers[i]; i += 2)
        FUZZ_ASSERT(headers[i + 1] != NULL && strlen(headers[i]) > 0);
    FUZZ_ASSERT(!st.streaming && !st.responded && !st.closed);
    st.streaming = 1;
    return RT_OK;
}

static void written(rt_str_t bytes, rt_msg_t *msg)
{
    FUZZ_ASSERT(!st.closed && !st.responded);
    fuzz_touch(bytes);
    st.check->write(bytes, msg);
}

static int f_write_ref(rt_sub_t *sub, rt_str_t bytes, rt_msg_t *msg)
{
    FUZZ_ASSERT(sub == SUB);
    written(bytes, msg);
    return RT_OK;
}

static int f_write_copy(rt_sub_t *sub, const char *bytes, size_t len)
{
    FUZZ_ASSERT(sub == SUB);
    written((rt_str_t){bytes, len}, NULL);
    return RT_OK;
}

static void f_sub_close(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == SUB);
    st.closed = 1;
}

static void f_sub_respond(rt_sub_t *sub, int status, const char *ctype, const rt_str_t *parts, size_t nparts)
{
    rt_buf_t body = {0};
    FUZZ_ASSERT(sub == SUB && ctype != NULL && !st.closed);
    answered();
    for (size_t i = 0; i < nparts; i++)
        rt_buf_append(&body, parts[i].base, parts[i].len);
    st.check->respond(status, (rt_str_t){body.base, body.len});
    rt_buf_free(&body);
}

static void f_sub_timer(rt_sub_t *sub, int slot, uint64_t ms, void (*cb)(rt_sub_t *sub))
{
    FUZZ_ASSERT(sub == SUB && (slot == 0 || slot == 1) && ms <= 3600 * 1000);
    if (!st.closed && !st.responded) /* the hub ignores timers of a subscriber that ended */
        st.timer[slot] = cb;
}

static int f_upgrade(rt_sub_t *sub, const char *const *headers)
{
    (void)sub, (void)headers;
    FUZZ_ASSERT(!"an HTTP transport upgrades");
    return RT_EINVAL;
}

typedef struct enc_arg {
    rt_str_t (*encode)(rt_msg_t *msg, int slot);
    int slot;
} enc_arg_t;

static rt_enc_t *encode_trampoline(rt_msg_t *m, void *arg)
{
    enc_arg_t *a = arg;
    rt_str_t s = a->encode(m, a->slot);
    rt_enc_t *e = rt_enc_new(s.base, s.len);
    free((void *)s.base);
    return e;
}

static rt_str_t f_msg_encoded(rt_msg_t *msg, const rt_transport_t *tp, int slot, rt_str_t (*encode)(rt_msg_t *msg, int slot))
{
    FUZZ_ASSERT(tp == &rt_transport_v1 && slot >= 0 && slot < tp->cache_slots && tp->cache_slots <= 4);
    enc_arg_t a = {encode, slot};
    return rt_msg_cached(msg, 1 + slot, encode_trampoline, &a);
}

static void f_count_delivered(const rt_transport_t *tp, size_t messages, size_t bytes)
{
    FUZZ_ASSERT(tp == &rt_transport_v1);
    (void)messages, (void)bytes;
}

static int exact(rt_str_t topic)
{
    int wild = 0;
    return rt_topic_check(topic, 1, &wild) == RT_OK && !wild;
}

static int subscribed(rt_str_t topic)
{
    for (size_t i = 0; i < st.nsubs; i++)
        if (rt_str_eqc(topic, st.subs[i]))
            return 1;
    return 0;
}

static rt_str_t user(void) { return rt_cstr(st.ident ? st.ident->user : ""); }

static int f_presence_join(rt_sub_t *sub, rt_str_t topic, rt_str_t client, int flags)
{
    FUZZ_ASSERT(sub == SUB);
    (void)flags;
    fuzz_touch(topic), fuzz_touch(client);
    if (!exact(topic))
        return RT_ETOPIC;
    if (!subscribed(topic))
        return RT_EINVAL;
    if (st.client[0] == '\0') {
        rt_str_t id = {NULL, 0};
        if (client.len && rt_presence_client_check(client, user(), &id) != RT_OK)
            return RT_EID;
        if (id.len) {
            memcpy(st.client, id.base, id.len);
            st.client[id.len] = '\0';
        } else {
            snprintf(st.client, sizeof(st.client), "fuzznode-1");
        }
        rt_presence_client_key(rt_cstr(st.client), user(), st.key);
    }
    return RT_OK;
}

/* presence=1 or presence=TOPIC..., with client= (hub_presence.c's reading of the request). */
static int f_presence_request(rt_sub_t *sub, int flags)
{
    rt_str_t v, client = {NULL, 0};
    if (!rt_req_query(&st.req, "presence", 0, &v))
        return 0;
    int all = v.len == 0 || rt_str_eqc(v, "1") || rt_str_eqc(v, "true");
    for (size_t i = 0; all ? i < st.nsubs : rt_req_query(&st.req, "presence", i, &v); i++) {
        rt_str_t t = all ? rt_cstr(st.subs[i]) : v;
        if (!exact(t) || !subscribed(t))
            return RT_ETOPIC;
    }
    rt_str_t id;
    if ((flags & RT_PRESENCE_LINGER) && rt_req_query(&st.req, "client", 0, &client) && client.len && st.client[0] == '\0' &&
        rt_presence_client_check(client, user(), &id) != RT_OK)
        return RT_EID;
    for (size_t i = 0; all ? i < st.nsubs : rt_req_query(&st.req, "presence", i, &v); i++)
        FUZZ_ASSERT(f_presence_join(sub, all ? rt_cstr(st.subs[i]) : v, client, flags) == RT_OK);
    return 1;
}

static int f_presence_snapshot(rt_sub_t *sub, rt_str_t topic, rt_str_t *json)
{
    (void)sub, (void)topic, (void)json;
    FUZZ_ASSERT(!"an HTTP transport asks for a snapshot");
    return RT_EINVAL;
}

static rt_str_t f_sub_client(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == SUB);
    return rt_cstr(st.client);
}

static rt_str_t f_sub_client_key(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == SUB);
    return rt_cstr(st.key);
}

/* The broker may decline to hold (HTTP/2, an expiring token): the plugin must then answer the usual way. */
static int f_sub_hold(rt_sub_t *sub, uint64_t within_ms, int status, const char *const *headers)
{
    (void)sub, (void)within_ms, (void)status, (void)headers;
    return RT_EINVAL;
}

static const rt_services_t services = {
    .abi_version = RT_PLUGIN_ABI_VERSION,
    FAKE_REQ_SERVICES,
    .cfg_int = f_cfg_int,
    .respond_error = f_respond_error,
    .respond = f_respond,
    .sub_open = f_sub_open,
    .sub_data = f_sub_data,
    .sub_request = f_sub_request,
    .subscribe = f_subscribe,
    .sub_cursor = f_sub_cursor,
    .stream_start = f_stream_start,
    .write_ref = f_write_ref,
    .write_copy = f_write_copy,
    .sub_close = f_sub_close,
    .sub_respond = f_sub_respond,
    .sub_timer = f_sub_timer,
    .upgrade = f_upgrade,
    .msg_ref = rt_msg_ref,
    .msg_encoded = f_msg_encoded,
    .count_delivered = f_count_delivered,
    .presence_join = f_presence_join,
    .presence_request = f_presence_request,
    .presence_snapshot = f_presence_snapshot,
    .sub_client = f_sub_client,
    .sub_client_key = f_sub_client_key,
    .sub_hold = f_sub_hold,
};

void fuzz_stream_setup(void)
{
    static const char *const overrides[][2] = {
        {"auth.anonymous.subscribe", "chat.>,news.*"},
        {"auth.jwt.secret", "fuzz-secret-0123456789abcdef0123"},
        {"limits.max_topics", "6"},
        {"presence.client_secret", "fuzz-client-secret-0123456789ab"}, /* seeds.py signs client keys with it */
    };
    fuzz_configure(overrides, sizeof(overrides) / sizeof(overrides[0]));
    char err[256];
    FUZZ_ASSERT(rt_presence_client_init(err, sizeof(err)) == 0);
    for (uint64_t i = 0; i < NRETAINED; i++) {
        retained[i] = rt_msg_new(RT_STRLIT("chat.a"), i == 1 ? RT_STRLIT("typing") : rt_str(NULL, 0),
                                 i == 2 ? RT_STRLIT("application/json") : rt_str(NULL, 0),
                                 i == 2 ? RT_STRLIT("{\"n\":2}") : RT_STRLIT("line one\r\nline two\rthree\n"));
        rt_msg_set_id(retained[i], RT_STRLIT("e1"), i + 1);
    }
}

/* A live message on the first topic subscribed (a pattern's messages come on a topic under it: chat.a here). */
static rt_msg_t *message(rt_str_t event, rt_str_t ctype, rt_str_t data, uint32_t flags)
{
    rt_str_t topic = st.nsubs && exact(rt_cstr(st.subs[0])) ? rt_cstr(st.subs[0]) : RT_STRLIT("chat.a");
    rt_msg_t *m = rt_msg_new(topic, event, ctype, data);
    m->flags |= flags;
    if (!(flags & RT_MSG_EPHEMERAL))
        rt_msg_set_id(m, RT_STRLIT("e1"), st.next_seq++);
    return m;
}

static rt_msg_t *presence_message(rt_str_t client, int join)
{
    rt_buf_t b = {0};
    rt_str_t topic = st.nsubs ? rt_cstr(st.subs[0]) : RT_STRLIT("chat.a");
    rt_buf_appendc(&b, "{\"topic\":");
    rt_json_append_string(&b, topic);
    rt_buf_appendc(&b, ",\"user\":null,\"client\":");
    rt_json_append_string(&b, client);
    rt_buf_appendc(&b, ",\"info\":null}");
    rt_msg_t *m = message(join ? RT_STRLIT("rt.join") : RT_STRLIT("rt.leave"), RT_STRLIT("application/json"),
                          (rt_str_t){b.base, b.len}, RT_MSG_EPHEMERAL | (join ? RT_MSG_JOIN : RT_MSG_LEAVE));
    rt_buf_free(&b);
    return m;
}

static void fire_timers(void)
{
    for (int slot = 0; slot < 2; slot++) {
        void (*cb)(rt_sub_t *) = st.timer[slot];
        st.timer[slot] = NULL;
        if (cb && !st.closed && !st.responded)
            cb(SUB);
    }
}

static void act(uint8_t op, rt_str_t arg, rt_str_t *event)
{
    rt_msg_t *m = NULL;
    rt_id_t id;
    switch (op) {
    case 'e':
        *event = rt_event_valid(arg) ? arg : rt_str(NULL, 0); /* what a publish (HTTP, rt.v1 or NATS) lets through */
        return;
    case 'm':
    case 'j':
    case 'x':
        m = message(*event, op == 'j' ? RT_STRLIT("application/json") : rt_str(NULL, 0), arg, op == 'x' ? RT_MSG_EPHEMERAL : 0);
        break;
    case 'p':
        m = presence_message(rt_presence_client_ok(arg) ? arg : RT_STRLIT("c-1"), arg.len == 0 || !(arg.base[0] & 1));
        break;
    case 'g':
        if (rt_id_parse(arg, &id) == RT_OK && !st.closed && !st.responded)
            rt_transport_v1.gap(SUB, arg);
        return;
    case 't':
        fire_timers();
        return;
    case 's':
        if (!st.closed && !st.responded)
            rt_transport_v1.end(SUB, arg.len ? (rt_end_reason_t)(1 + arg.base[0] % 3) : RT_END_SHUTDOWN);
        return;
    default:
        return;
    }
    deliver(m);
    rt_msg_unref(m);
}

void fuzz_stream_run(const uint8_t *data, size_t size, const fuzz_stream_check_t *check)
{
    memset(&st, 0, sizeof(st));
    st.check = check;
    st.next_seq = NRETAINED + 1;
    const uint8_t *sep = NULL;
    for (size_t i = 0; i + 1 < size && sep == NULL; i++)
        if (data[i] == '\n' && data[i + 1] == '\n')
            sep = data + i;
    size_t reqlen = sep ? (size_t)(sep - data) : size;
    fake_req_init(&st.req, data, reqlen);
    FUZZ_ASSERT(rt_transport_v1.init(&services) == 0);
    FUZZ_ASSERT(rt_transport_v1.claims((rt_request_t *)&st.req) >= 0);
    rt_transport_v1.start((rt_request_t *)&st.req);
    /* answered, streaming, or held with a timer that answers */
    FUZZ_ASSERT(st.responded || st.streaming || st.timer[0] || st.timer[1]);

    rt_str_t event = {NULL, 0};
    for (size_t pos = sep ? reqlen + 2 : size; pos + 2 <= size && st.opened;) {
        uint8_t op = data[pos], n = data[pos + 1];
        pos += 2;
        if (n > size - pos)
            n = (uint8_t)(size - pos);
        act(op, (rt_str_t){(const char *)data + pos, n}, &event);
        pos += n;
    }
    if (st.opened && !st.closed && !st.responded) {
        fire_timers(); /* a held long-poll answers at its timeout */
        if (!st.closed && !st.responded)
            rt_transport_v1.end(SUB, RT_END_SHUTDOWN);
        FUZZ_ASSERT(st.closed || st.responded); /* the end closes a stream and answers a held request */
    }
    if (st.opened)
        rt_transport_v1.release(SUB);
    rt_ident_free(st.ident);
    fake_req_free(&st.req);
}
