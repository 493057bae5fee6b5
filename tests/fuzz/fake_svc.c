/*
 * The fake services of fake_svc.h. Besides standing in for the broker, they check what the plugin hands back:
 * each write is one well-formed server frame (unmasked, exact length, nothing after a close), text frames are
 * UTF-8 and, in rt.v1 mode, JSON; compressed frames inflate; a request is answered once, by an error or by
 * the upgrade; slices the plugin passes are readable to their end.
 */
#include "fake_svc.h"
#include "fake_req.h"
#include "auth.h"
#include "config.h"
#include "http.h"
#include "jwtauth.h"
#include "message.h"
#include "presence.h"
#include "publish.h"
#include "text.h"
#include "topic.h"
#include "ws_deflate.h"

fuzz_ws_t fuzz_ws;

static union {
    ws_conn_t c;
    unsigned char bytes[1024];
} area;
static char sub_tag;
static int close_written;
static char subs[4][RT_TOPIC_MAX + 1];
static rt_str_t encoded; /* the last frame the plugin encoded for a message; the broker caches and frees it */
static size_t nsubs;

rt_sub_t *fuzz_ws_sub(void) { return (rt_sub_t *)&sub_tag; }
ws_conn_t *fuzz_ws_conn(void) { return &area.c; }

static int64_t f_cfg_int(const char *section, const char *name)
{
    if (strcmp(section, "websocket") == 0) {
        if (strcmp(name, "deflate") == 0)
            return fuzz_ws.deflate_enabled;
        if (strcmp(name, "echo") == 0)
            return fuzz_ws.echo;
        if (strcmp(name, "deflate_threshold") == 0)
            return 16;
        return 5000; /* ping_interval, auth_timeout */
    }
    char path[128];
    snprintf(path, sizeof(path), "%s.%s", section, name);
    return rt_cfg_int(path);
}

static void answered(void)
{
    FUZZ_ASSERT(!fuzz_ws.responded && !fuzz_ws.upgraded);
    fuzz_ws.responded = 1;
}
static void f_respond_error(rt_request_t *r, int err, const char *message)
{
    (void)r, (void)message;
    FUZZ_ASSERT(err < 0);
    answered();
}
static void f_respond(rt_request_t *r, int status, const char *ctype, const char *body, size_t len)
{
    (void)r, (void)status, (void)ctype;
    fuzz_touch((rt_str_t){body, len});
    answered();
}

static rt_sub_t *f_sub_open(rt_request_t *req, const rt_transport_t *tp, size_t data_size)
{
    (void)req, (void)tp;
    FUZZ_ASSERT(!fuzz_ws.opened && data_size <= sizeof(area));
    fuzz_ws.opened = 1;
    memset(&area, 0, sizeof(area));
    return fuzz_ws_sub();
}
static void *f_sub_data(rt_sub_t *sub)
{
    FUZZ_ASSERT(sub == fuzz_ws_sub() && fuzz_ws.opened);
    return &area;
}
static rt_request_t *f_sub_request(rt_sub_t *sub)
{
    (void)sub;
    return fuzz_ws.req;
}

static int f_subscribe(rt_sub_t *sub, const rt_sub_opts_t *o)
{
    rt_id_t id;
    FUZZ_ASSERT(o->ntopics >= 1 && o->ntopics <= 1024);
    fuzz_touch(o->since);
    for (size_t i = 0; i < o->ntopics; i++) {
        fuzz_touch(o->topics[i]);
        if (rt_topic_check(o->topics[i], 1, NULL) != RT_OK)
            return RT_ETOPIC;
    }
    if (o->since.len && rt_id_parse(o->since, &id) != RT_OK)
        return RT_EID;
    if (nsubs + o->ntopics > 4)
        return RT_ETOOMANY;
    for (size_t i = 0; i < o->ntopics; i++) {
        int err = rt_auth_allows(NULL, o->topics[i], 0);
        if (err != RT_OK)
            return err;
    }
    if (o->since.len && !rt_str_eqc(id.epoch, "e1"))
        rt_transport_v1.gap(sub, o->since); /* as the hub does, before the replay */
    for (size_t i = 0; i < o->ntopics; i++) {
        memcpy(subs[nsubs], o->topics[i].base, o->topics[i].len);
        subs[nsubs++][o->topics[i].len] = '\0';
    }
    return RT_OK;
}

static rt_str_t f_sub_cursor(rt_sub_t *sub)
{
    (void)sub;
    return (rt_str_t){"e1:0", 4};
}

static int f_stream_start(rt_sub_t *sub, int status, const char *const *headers)
{
    (void)sub, (void)status, (void)headers;
    return RT_OK;
}

/* One server frame, checked as a client would read it. */
static void check_frame(const unsigned char *b, size_t len)
{
    ws_frame_t f;
    FUZZ_ASSERT(!close_written);
    FUZZ_ASSERT(ws_parse_header(b, len, &f) == 1);
    FUZZ_ASSERT(!f.masked && !f.rsv2 && !f.rsv3 && f.fin && f.header_len + f.len == len);
    const unsigned char *p = b + f.header_len;
    size_t n = (size_t)f.len;
    if (f.opcode & 8) {
        FUZZ_ASSERT(f.opcode <= WS_PONG && n <= 125 && !f.rsv1);
        if (f.opcode == WS_CLOSE) {
            FUZZ_ASSERT(n == 0 || (n >= 2 && ws_close_code_valid(((unsigned)p[0] << 8) | p[1])));
            FUZZ_ASSERT(n < 2 || rt_utf8_valid((const char *)p + 2, n - 2));
            close_written = 1;
        }
        return;
    }
    FUZZ_ASSERT(f.opcode == WS_TEXT || f.opcode == WS_BINARY);
    unsigned char *inflated = NULL;
    if (f.rsv1) {
        FUZZ_ASSERT(area.c.deflate);
        FUZZ_ASSERT(ws_inflate_message(p, n, 1 << 20, &inflated, &n) == 0);
        p = inflated;
    }
    if (f.opcode == WS_TEXT) {
        FUZZ_ASSERT(rt_utf8_valid((const char *)p, n));
        if (area.c.mode == WS_MODE_V1)
            FUZZ_ASSERT(rt_json_valid((const char *)p, n));
    }
    free(inflated);
}

static int f_write_ref(rt_sub_t *sub, rt_str_t bytes, rt_msg_t *msg)
{
    (void)sub, (void)msg;
    check_frame((const unsigned char *)bytes.base, bytes.len);
    return RT_OK;
}
static int f_write_copy(rt_sub_t *sub, const char *bytes, size_t len)
{
    (void)sub;
    check_frame((const unsigned char *)bytes, len);
    return RT_OK;
}
static void f_sub_close(rt_sub_t *sub)
{
    (void)sub;
    fuzz_ws.closed = 1;
}
static void f_sub_respond(rt_sub_t *sub, int status, const char *ctype, const rt_str_t *parts, size_t nparts)
{
    (void)sub, (void)status, (void)ctype;
    for (size_t i = 0; i < nparts; i++)
        fuzz_touch(parts[i]);
}
static void f_sub_timer(rt_sub_t *sub, int slot, uint64_t ms, void (*cb)(rt_sub_t *sub))
{
    (void)sub, (void)ms;
    FUZZ_ASSERT(slot == 0 || slot == 1);
    if (!fuzz_ws.closed) /* the hub ignores timers of a closed subscriber */
        fuzz_ws.timer[slot] = cb;
}

static int f_upgrade(rt_sub_t *sub, const char *const *headers)
{
    (void)sub;
    FUZZ_ASSERT(fuzz_ws.opened && !fuzz_ws.responded && !fuzz_ws.upgraded);
    int has_accept = 0;
    for (size_t i = 0; headers[i]; i += 2) {
        FUZZ_ASSERT(headers[i + 1] != NULL);
        if (strcmp(headers[i], "sec-websocket-accept") == 0)
            has_accept = strlen(headers[i + 1]) == 28;
    }
    FUZZ_ASSERT(has_accept);
    if (fuzz_ws.upgrade_fails)
        return RT_EINVAL; /* HTTP/2: no upgrade */
    fuzz_ws.upgraded = 1;
    return RT_OK;
}

static int f_unsubscribe(rt_sub_t *sub, rt_str_t pattern)
{
    (void)sub;
    fuzz_touch(pattern);
    for (size_t i = 0; i < nsubs; i++) {
        if (rt_str_eqc(pattern, subs[i])) {
            memmove(subs[i], subs[--nsubs], sizeof(subs[i]));
            return RT_OK;
        }
    }
    return RT_EINVAL;
}

static int f_publish(rt_sub_t *sub, const rt_pub_t *pub, const char **why,
                     void (*done)(rt_sub_t *sub, int err, rt_str_t id, void *arg), void *arg)
{
    fuzz_touch(pub->topic), fuzz_touch(pub->event), fuzz_touch(pub->content_type), fuzz_touch(pub->data), fuzz_touch(pub->idempotency_key);
    int err = rt_publish_check(NULL, pub->topic, pub->event, pub->event.len > 0,
                               pub->idempotency_key.len ? pub->idempotency_key : (rt_str_t){NULL, 0}, pub->data.len, why);
    if (err != RT_OK)
        return err;
    if (pub->topic.len > 3 && memcmp(pub->topic.base, "rl.", 3) == 0) {
        *why = "too many publishes per second";
        return RT_ERATELIMIT;
    }
    done(sub, RT_OK, pub->ephemeral ? (rt_str_t){NULL, 0} : (rt_str_t){"e1:42", 5}, arg);
    return RT_OK;
}

static int f_authenticate(rt_sub_t *sub, rt_str_t token, const char **why)
{
    (void)sub;
    rt_ident_t *id = NULL;
    int err = rt_jwt_verify(token, &id, why);
    rt_ident_free(id);
    if (err == RT_OK)
        fuzz_ws.auth_state = RT_OK;
    return err;
}

static int f_sub_auth_state(rt_sub_t *sub)
{
    (void)sub;
    return fuzz_ws.auth_state;
}

static rt_msg_t *f_msg_ref(rt_msg_t *m) { return rt_msg_ref(m); }
static rt_str_t f_msg_encoded(rt_msg_t *msg, const rt_transport_t *tp, int slot, rt_str_t (*encode)(rt_msg_t *msg, int slot))
{
    FUZZ_ASSERT(slot >= 0 && slot < tp->cache_slots);
    free((void *)encoded.base);
    encoded = encode(msg, slot);
    return encoded;
}

static void f_count_delivered(const rt_transport_t *tp, size_t messages, size_t bytes) { (void)tp, (void)messages, (void)bytes; }

static int exact_subscribed(rt_str_t topic)
{
    int wild = 0;
    fuzz_touch(topic);
    if (rt_topic_check(topic, 1, &wild) != RT_OK || wild)
        return RT_ETOPIC;
    for (size_t i = 0; i < nsubs; i++)
        if (rt_str_eqc(topic, subs[i]))
            return RT_OK;
    return RT_EINVAL;
}

static int f_presence_join(rt_sub_t *sub, rt_str_t topic, rt_str_t client, int flags)
{
    (void)sub, (void)flags;
    fuzz_touch(client);
    return exact_subscribed(topic);
}

static int f_presence_request(rt_sub_t *sub, int flags)
{
    rt_str_t v;
    if (!fake_req_query(fuzz_ws.req, "presence", 0, &v))
        return 0;
    for (size_t i = 0; i < nsubs; i++) {
        int err = f_presence_join(sub, rt_cstr(subs[i]), (rt_str_t){NULL, 0}, flags);
        if (err != RT_OK)
            return err == RT_EINVAL ? RT_ETOPIC : err;
    }
    return 1;
}

static int f_presence_snapshot(rt_sub_t *sub, rt_str_t topic, rt_str_t *json)
{
    static rt_buf_t buf;
    (void)sub;
    int wild = 0;
    fuzz_touch(topic);
    if (rt_topic_check(topic, 1, &wild) != RT_OK || wild)
        return RT_ETOPIC;
    buf.len = 0;
    rt_presence_snapshot(topic, &buf);
    *json = (rt_str_t){buf.base, buf.len};
    return RT_OK;
}

static rt_str_t f_sub_client(rt_sub_t *sub)
{
    (void)sub;
    return (rt_str_t){"fuzz-1", 6};
}

const rt_services_t fuzz_services = {
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
    .unsubscribe = f_unsubscribe,
    .publish = f_publish,
    .authenticate = f_authenticate,
    .sub_auth_state = f_sub_auth_state,
    .msg_ref = f_msg_ref,
    .msg_encoded = f_msg_encoded,
    .count_delivered = f_count_delivered,
    .presence_join = f_presence_join,
    .presence_request = f_presence_request,
    .presence_snapshot = f_presence_snapshot,
    .sub_client = f_sub_client,
};

void fuzz_ws_setup(void)
{
    static const char *const overrides[][2] = {
        {"auth.anonymous.subscribe", "chat.>,news.*"},
        {"auth.anonymous.publish", "chat.>,rl.>"},
        {"auth.jwt.secret", "fuzz-secret-0123456789abcdef0123"},
        {"limits.max_message_bytes", "2048"},
    };
    fuzz_configure(overrides, sizeof(overrides) / sizeof(overrides[0]));
}

void fuzz_ws_begin(void)
{
    fuzz_ws.opened = fuzz_ws.closed = fuzz_ws.upgraded = fuzz_ws.responded = 0;
    fuzz_ws.timer[0] = fuzz_ws.timer[1] = NULL;
    close_written = 0;
    nsubs = 0;
    memset(&area, 0, sizeof(area));
    FUZZ_ASSERT(rt_transport_v1.init(&fuzz_services) == 0);
}

void fuzz_ws_feed(const uint8_t *data, size_t size, unsigned seed)
{
    char *pending = NULL;
    size_t npending = 0, off = 0;
    while (off < size && !fuzz_ws.closed) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = (seed >> 16) % 4 == 0 ? size - off : 1 + (seed >> 8) % 64;
        if (chunk > size - off)
            chunk = size - off;
        char *buf = malloc(npending + chunk); /* exactly the bytes held, so that ASan sees any over-read */
        FUZZ_ASSERT(buf != NULL);
        if (npending)
            memcpy(buf, pending, npending);
        memcpy(buf + npending, data + off, chunk);
        off += chunk;
        size_t len = npending + chunk;
        free(pending);
        size_t used = rt_transport_v1.receive(fuzz_ws_sub(), buf, len);
        FUZZ_ASSERT(used <= len);
        npending = len - used;
        pending = malloc(npending ? npending : 1);
        FUZZ_ASSERT(pending != NULL);
        memcpy(pending, buf + used, npending);
        free(buf);
    }
    free(pending);
}

void fuzz_ws_end(void)
{
    for (int slot = 0; slot < 2; slot++) {
        void (*cb)(rt_sub_t *) = fuzz_ws.timer[slot];
        fuzz_ws.timer[slot] = NULL;
        if (cb && !fuzz_ws.closed)
            cb(fuzz_ws_sub());
    }
    if (fuzz_ws.opened)
        rt_transport_v1.release(fuzz_ws_sub());
    free((void *)encoded.base);
    encoded = (rt_str_t){NULL, 0};
}
