/*
 * WebSocket transport (RFC 6455 + RFC 7692) on a connection the broker hands over
 * after the 101: we frame ourselves so that a message's frame (and its compressed
 * frame) is built once, cached on the message, and the same bytes are queued to
 * every subscriber. Raw mode sends payloads verbatim; rt.v1 mode speaks the JSON ops
 * of the API. Inbound frames are checked strictly and failures close with the code
 * RFC 6455 names. Written only against include/rtbroker/plugin.h.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rtbroker/plugin.h"
#include "ws_deflate.h"
#include "ws_frame.h"
#include "ws_ops.h"

enum { SLOT_RAW = 0, SLOT_RAW_Z = 1, SLOT_V1 = 2, SLOT_V1_Z = 3 };

const rt_services_t *ws_svc;
#define svc ws_svc
static uint64_t ping_ms, auth_timeout_ms;
static size_t max_message, deflate_threshold, max_topics, auth_max_bytes;
static int deflate_enabled, echo_mode;
extern const rt_transport_t rt_transport_v1;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int ws_init(const rt_services_t *services)
{
    svc = services;
    ping_ms = (uint64_t)svc->cfg_int("websocket", "ping_interval");
    auth_timeout_ms = (uint64_t)svc->cfg_int("websocket", "auth_timeout");
    auth_max_bytes = (size_t)svc->cfg_int("websocket", "auth_max_bytes");
    deflate_enabled = (int)svc->cfg_int("websocket", "deflate");
    deflate_threshold = (size_t)svc->cfg_int("websocket", "deflate_threshold");
    echo_mode = (int)svc->cfg_int("websocket", "echo");
    max_message = (size_t)svc->cfg_int("limits", "max_message_bytes");
    max_topics = (size_t)svc->cfg_int("limits", "max_topics");
    if (echo_mode)
        svc->log(1, "websocket", "websocket.echo is on: raw-mode clients get their messages back (for conformance tests)");
    return 0;
}

static int has_token(rt_str_t h, const char *token)
{
    size_t n = strlen(token), i = 0;
    while (i < h.len) {
        while (i < h.len && (h.base[i] == ' ' || h.base[i] == '\t' || h.base[i] == ','))
            i++;
        size_t s = i;
        while (i < h.len && h.base[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (h.base[e - 1] == ' ' || h.base[e - 1] == '\t'))
            e--;
        if (e - s == n && strncasecmp(h.base + s, token, n) == 0)
            return 1;
    }
    return 0;
}

static int ws_claims(rt_request_t *req) { return has_token(svc->req_header(req, "upgrade"), "websocket") ? 100 : 0; }

/* ---------- output ---------- */

static void send_frame(rt_sub_t *sub, int opcode, const void *payload, size_t len)
{
    unsigned char buf[10 + 256];
    if (len <= 256) {
        size_t h = ws_build_header(buf, opcode, 1, 0, len);
        if (len)
            memcpy(buf + h, payload, len);
        svc->write_copy(sub, (const char *)buf, h + len);
        return;
    }
    char *frame = malloc(10 + len);
    if (frame == NULL)
        abort();
    size_t h = ws_build_header((unsigned char *)frame, opcode, 1, 0, len);
    memcpy(frame + h, payload, len);
    svc->write_copy(sub, frame, h + len);
    free(frame);
}

void ws_send_text(rt_sub_t *sub, const char *text, size_t len)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (!c->close_sent)
        send_frame(sub, WS_TEXT, text, len);
}

static void on_linger_end(rt_sub_t *sub) { svc->sub_close(sub); }

/* Sends a close frame (once). When the peer has closed already (peer_closed) the connection ends after it;
 * otherwise we wait a little for the peer's close, reading and discarding, so that closing the socket with
 * unread input (a TCP reset) cannot destroy our close frame before the peer reads it. */
static void close_frame(rt_sub_t *sub, unsigned code, const char *reason, int peer_closed)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (!c->close_sent) {
        unsigned char p[125];
        size_t rlen = reason ? strlen(reason) : 0;
        if (rlen > 123)
            rlen = 123;
        p[0] = (unsigned char)(code >> 8), p[1] = (unsigned char)code;
        if (rlen)
            memcpy(p + 2, reason, rlen);
        send_frame(sub, WS_CLOSE, p, code ? 2 + rlen : 0);
        c->close_sent = 1;
    }
    if (peer_closed) {
        svc->sub_close(sub);
    } else {
        svc->sub_timer(sub, 0, 0, NULL); /* no more pings */
        svc->sub_timer(sub, 1, 1000, on_linger_end);
    }
}

void ws_close(rt_sub_t *sub, unsigned code, const char *reason) { close_frame(sub, code, reason, 0); }

/* Fails the connection (RFC 6455 7.1.7): no more input is parsed. */
static void fail(rt_sub_t *sub, unsigned code, const char *reason)
{
    ws_conn_t *c = svc->sub_data(sub);
    c->closed_in = 1;
    close_frame(sub, code, reason, 0);
}

/* A message's frame for a variant, built once per message and shared by every subscriber. */
static rt_str_t encode(rt_msg_t *msg, int slot)
{
    rt_msg_view_t v;
    svc->msg_view(msg, &v);
    const unsigned char *payload;
    size_t len;
    char *json = NULL;
    int opcode = WS_TEXT;
    if (v.flags & (RT_MSG_JOIN | RT_MSG_LEAVE)) { /* {"type":"join"|"leave",...} in both modes */
        rt_str_t env = svc->msg_envelope(msg);
        payload = (const unsigned char *)env.base;
        len = env.len;
    } else if (slot == SLOT_RAW || slot == SLOT_RAW_Z) {
        payload = (const unsigned char *)v.data.base;
        len = v.data.len;
        opcode = (v.flags & RT_MSG_UTF8) ? WS_TEXT : WS_BINARY;
    } else {
        rt_str_t env = svc->msg_envelope(msg); /* {"id":...} becomes {"type":"msg","id":...} */
        json = malloc(env.len + 16);
        if (json == NULL)
            abort();
        memcpy(json, "{\"type\":\"msg\",", 14);
        memcpy(json + 14, env.base + 1, env.len - 1);
        payload = (const unsigned char *)json;
        len = 14 + env.len - 1;
    }
    unsigned char *out;
    size_t h;
    if ((slot == SLOT_RAW_Z || slot == SLOT_V1_Z) && len >= deflate_threshold) {
        size_t zlen;
        out = ws_deflate_message(payload, len, 10, &zlen);
        unsigned char hdr[10];
        h = ws_build_header(hdr, opcode, 1, 1, zlen);
        memmove(out + 10 - h, hdr, h); /* the header goes right before the compressed bytes */
        memmove(out, out + 10 - h, h + zlen);
        free(json);
        return (rt_str_t){(const char *)out, h + zlen};
    }
    out = malloc(10 + len);
    if (out == NULL)
        abort();
    h = ws_build_header(out, opcode, 1, 0, len);
    memcpy(out + h, payload, len);
    free(json);
    return (rt_str_t){(const char *)out, h + len};
}

static void ws_deliver(rt_sub_t *sub, rt_msg_t *msg)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (c->close_sent)
        return;
    int slot = c->mode == WS_MODE_V1 ? SLOT_V1 : SLOT_RAW;
    if (c->deflate)
        slot++;
    rt_str_t frame = svc->msg_encoded(msg, &rt_transport_v1, slot, encode);
    if (svc->write_ref(sub, frame, msg) == RT_OK)
        svc->count_delivered(&rt_transport_v1, 1, frame.len);
}

static void ws_gap(rt_sub_t *sub, rt_str_t from)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (c->mode == WS_MODE_V1)
        ws_ops_gap(sub, c, from);
    /* raw mode has no way to say it; the payloads that are still retained follow */
}

static void ws_end(rt_sub_t *sub, rt_end_reason_t why)
{
    if (why == RT_END_SLOW)
        ws_close(sub, 1013, "slow consumer");
    else if (why == RT_END_EXPIRED)
        ws_close(sub, 4001, "token expired");
    else
        ws_close(sub, 1001, "server shutdown");
}

static void ws_release(rt_sub_t *sub)
{
    ws_conn_t *c = svc->sub_data(sub);
    free(c->msg);
}

/* ---------- input ---------- */

static void reset_message(ws_conn_t *c)
{
    c->msg_opcode = 0;
    c->msg_compressed = 0;
    c->msg_len = 0;
    memset(&c->utf8, 0, sizeof(c->utf8));
    if (c->msg_cap > 65536) { /* do not keep a large buffer per idle connection */
        free(c->msg);
        c->msg = NULL;
        c->msg_cap = 0;
    }
}

static void finish_message(rt_sub_t *sub, ws_conn_t *c)
{
    unsigned char *data = c->msg, *inflated = NULL;
    size_t len = c->msg_len;
    if (c->msg_compressed) {
        int r = ws_inflate_message(c->msg, c->msg_len, max_message, &inflated, &len);
        if (r == -2) {
            fail(sub, 1009, "message too big");
            return;
        }
        if (r != 0) {
            fail(sub, 1007, "invalid compressed data");
            return;
        }
        data = inflated;
        if (c->msg_opcode == WS_TEXT && !svc->utf8_valid((const char *)data, len)) {
            free(inflated);
            fail(sub, 1007, "invalid UTF-8");
            return;
        }
    } else if (c->msg_opcode == WS_TEXT && !ws_utf8_complete(&c->utf8)) {
        fail(sub, 1007, "invalid UTF-8");
        return;
    }
    int opcode = c->msg_opcode;
    if (echo_mode && c->mode == WS_MODE_RAW) {
        if (c->deflate && len >= deflate_threshold) {
            size_t zlen;
            unsigned char *z = ws_deflate_message(data, len, 10, &zlen), hdr[10];
            size_t h = ws_build_header(hdr, opcode, 1, 1, zlen);
            memcpy(z + 10 - h, hdr, h);
            svc->write_copy(sub, (const char *)z + 10 - h, h + zlen);
            free(z);
        } else {
            send_frame(sub, opcode, data, len);
        }
    } else if (c->mode == WS_MODE_V1) {
        if (opcode == WS_BINARY)
            fail(sub, 1003, "rt.v1 takes JSON text frames");
        else
            ws_ops_handle(sub, c, (const char *)data, len);
    }
    free(inflated);
    reset_message(c); /* after the last use of data, which may be c->msg */
}

static void handle_control(rt_sub_t *sub, ws_conn_t *c, int opcode, const unsigned char *p, size_t len)
{
    if (opcode == WS_PING) {
        if (!c->close_sent)
            send_frame(sub, WS_PONG, p, len);
        return;
    }
    if (opcode == WS_PONG)
        return;
    /* close */
    c->closed_in = 1;
    if (c->close_sent) { /* the answer to ours: the handshake is complete */
        svc->sub_close(sub);
        return;
    }
    if (len == 1) {
        fail(sub, 1002, "close payload of one byte");
        return;
    }
    unsigned code = 0;
    if (len >= 2) {
        code = ((unsigned)p[0] << 8) | p[1];
        if (!ws_close_code_valid(code)) {
            fail(sub, 1002, "invalid close code");
            return;
        }
        if (!svc->utf8_valid((const char *)p + 2, len - 2)) {
            fail(sub, 1007, "invalid UTF-8 in close reason");
            return;
        }
    }
    close_frame(sub, code ? code : 1000, NULL, 1);
}

/* Until its credentials are accepted a connection may send only a little (its {"op":"auth"}): it cannot make the
 * broker parse, buffer or answer much for nobody. 1: the frame f would go over that (told before it is buffered). */
static int over_unauthed_cap(rt_sub_t *sub, ws_conn_t *c, const ws_frame_t *f)
{
    if (c->authed || (c->authed = svc->sub_auth_state(sub) == RT_OK))
        return 0;
    return f->len > auth_max_bytes || c->unauthed_in + f->header_len + f->len > auth_max_bytes;
}

static size_t ws_receive(rt_sub_t *sub, const char *bytes, size_t len)
{
    ws_conn_t *c = svc->sub_data(sub);
    const unsigned char *in = (const unsigned char *)bytes;
    size_t off = 0;
    while (off < len && !c->closed_in) {
        ws_frame_t f;
        int r = ws_parse_header(in + off, len - off, &f);
        if (r == 0)
            break;
        int control = f.opcode & 8;
        if (r < 0 || f.rsv2 || f.rsv3 || !f.masked) {
            fail(sub, 1002, r < 0 ? "bad length" : f.masked ? "reserved bits set" : "client frames must be masked");
            return len;
        }
        if (control) {
            if (f.opcode > WS_PONG || !f.fin || f.len > 125 || f.rsv1) {
                fail(sub, 1002, "bad control frame");
                return len;
            }
        } else {
            if (f.opcode > WS_BINARY) {
                fail(sub, 1002, "reserved opcode");
                return len;
            }
            if ((f.opcode == WS_CONT) != (c->msg_opcode != 0)) {
                fail(sub, 1002, f.opcode == WS_CONT ? "nothing to continue" : "a message is still in progress");
                return len;
            }
            if (f.rsv1 && (f.opcode == WS_CONT || !c->deflate)) {
                fail(sub, 1002, "RSV1 without a compressed message");
                return len;
            }
            if (f.len > max_message || c->msg_len + f.len > max_message) {
                fail(sub, 1009, "message too big");
                return len;
            }
        }
        if (over_unauthed_cap(sub, c, &f)) {
            fail(sub, 4001, "authenticate with {\"op\":\"auth\"} first (too much input before it)");
            return len;
        }
        if (len - off < f.header_len + f.len)
            break; /* wait for the whole frame */
        if (!c->authed)
            c->unauthed_in += f.header_len + (size_t)f.len;
        const unsigned char *payload = in + off + f.header_len;
        off += f.header_len + (size_t)f.len;
        c->last_seen = now_ms();
        if (c->close_sent && f.opcode != WS_CLOSE)
            continue; /* after our close, only the peer's close matters */
        if (control) {
            unsigned char p[125];
            ws_unmask(p, payload, (size_t)f.len, f.mask, 0);
            handle_control(sub, c, f.opcode, p, (size_t)f.len);
            continue;
        }
        if (f.opcode != WS_CONT) {
            c->msg_opcode = f.opcode;
            c->msg_compressed = f.rsv1;
        }
        if (c->msg_len + f.len > c->msg_cap || c->msg == NULL) {
            size_t cap = c->msg_cap ? c->msg_cap : 256;
            while (cap < c->msg_len + f.len)
                cap *= 2;
            if (cap < c->msg_cap)
                cap = c->msg_cap;
            c->msg = realloc(c->msg, cap);
            if (c->msg == NULL)
                abort();
            c->msg_cap = cap;
        }
        unsigned char *dst = c->msg + c->msg_len;
        ws_unmask(dst, payload, (size_t)f.len, f.mask, 0);
        c->msg_len += (size_t)f.len;
        if (c->msg_opcode == WS_TEXT && !c->msg_compressed && ws_utf8_feed(&c->utf8, dst, (size_t)f.len) != 0) {
            fail(sub, 1007, "invalid UTF-8");
            return len;
        }
        if (f.fin)
            finish_message(sub, c);
    }
    return c->closed_in ? len : off;
}

/* ---------- heartbeats ---------- */

static void on_heartbeat(rt_sub_t *sub)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (now_ms() - c->last_seen > 2 * ping_ms) {
        ws_close(sub, 1001, "no answer to pings");
        return;
    }
    if (!c->close_sent)
        send_frame(sub, WS_PING, NULL, 0);
    svc->sub_timer(sub, 0, ping_ms, on_heartbeat);
}

static void on_auth_timeout(rt_sub_t *sub)
{
    if (svc->sub_auth_state(sub) != RT_OK)
        ws_close(sub, 4001, "authenticate with {\"op\":\"auth\"} first");
}

/* ---------- handshake ---------- */

static int key_ok(rt_str_t key)
{
    unsigned char out[32];
    if (key.len != 24 || key.base[22] != '=' || key.base[23] != '=')
        return 0;
    return EVP_DecodeBlock(out, (const unsigned char *)key.base, 24) == 18; /* 16 bytes + 2 padding */
}

static void accept_key(rt_str_t key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char buf[24 + sizeof(guid)], digest[SHA_DIGEST_LENGTH];
    memcpy(buf, key.base, 24);
    memcpy(buf + 24, guid, sizeof(guid) - 1);
    SHA1(buf, 24 + sizeof(guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* Picks the subprotocol to answer from the client's list; sets *v1 when it is rt.v1. Never a bearer token. */
static const char *pick_protocol(rt_str_t offered, int *v1)
{
    if (has_token(offered, "rt.v1")) {
        *v1 = 1;
        return "rt.v1";
    }
    if (has_token(offered, "rt.raw"))
        return "rt.raw";
    return NULL;
}

static void ws_start(rt_request_t *req)
{
    rt_str_t version = svc->req_header(req, "sec-websocket-version"), key = svc->req_header(req, "sec-websocket-key");
    if (!has_token(svc->req_header(req, "upgrade"), "websocket")) {
        svc->respond_error(req, RT_EINVAL, "this path takes WebSocket connections (Upgrade: websocket)");
        return;
    }
    if (version.len != 2 || memcmp(version.base, "13", 2) != 0) {
        svc->respond_error(req, RT_EINVAL, "Sec-WebSocket-Version must be 13");
        return;
    }
    if (!key_ok(key)) {
        svc->respond_error(req, RT_EINVAL, "Sec-WebSocket-Key must be 16 bytes in base64");
        return;
    }
    rt_str_t path = svc->req_path(req);
    int v1 = path.len >= 3 && memcmp(path.base, "/ws", 3) == 0;
    const char *protocol = pick_protocol(svc->req_header(req, "sec-websocket-protocol"), &v1);
    rt_str_t topics[1024];
    int n = svc->req_topics(req, topics, max_topics < 1024 ? max_topics : 1024);
    if (n == RT_ETOPIC && v1) {
        n = 0; /* rt.v1 subscribes with ops; no topic in the URL is fine */
        rt_str_t t;
        if (svc->req_query(req, "topic", 0, &t) || (path.len > 4 && path.base[3] == '/'))
            n = RT_ETOPIC;
    }
    if (n < 0) {
        svc->respond_error(req, n, NULL);
        return;
    }
    rt_str_t ext = svc->req_header(req, "sec-websocket-extensions");
    int deflate = deflate_enabled && ext.len && ws_deflate_accept(ext.base, ext.len);
    char accept[32];
    accept_key(key, accept);

    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, sizeof(ws_conn_t));
    ws_conn_t *c = svc->sub_data(sub);
    c->mode = v1 ? WS_MODE_V1 : WS_MODE_RAW;
    c->deflate = deflate;
    c->last_seen = now_ms();
    int err = RT_OK;
    if (n > 0) {
        rt_sub_opts_t opts = {topics, (size_t)n, svc->req_since(req), 0};
        c->gap_topic = topics[0];
        err = svc->subscribe(sub, &opts);
        c->gap_topic = (rt_str_t){NULL, 0};
        if (err == RT_EID || err == RT_ETOPIC || err == RT_ETOOMANY || err == RT_EUNAVAILABLE) {
            svc->respond_error(req, err, NULL);
            return;
        }
        if (err == RT_OK && svc->presence_request(sub, 0) == RT_ETOPIC) {
            svc->respond_error(req, RT_ETOPIC, "presence=1 needs exact topics; presence=TOPIC must name an exact topic of this subscription");
            return;
        }
    }
    const char *headers[12];
    size_t h = 0;
    headers[h++] = "upgrade", headers[h++] = "websocket";
    headers[h++] = "sec-websocket-accept", headers[h++] = accept;
    if (protocol)
        headers[h++] = "sec-websocket-protocol", headers[h++] = protocol;
    if (deflate)
        headers[h++] = "sec-websocket-extensions",
        headers[h++] = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    headers[h] = NULL;
    if (svc->upgrade(sub, headers) != RT_OK) {
        svc->respond_error(req, RT_EINVAL, "WebSocket needs HTTP/1.1");
        return;
    }
    /* refusals are told after the upgrade, so that a browser can read them */
    int state = svc->sub_auth_state(sub);
    if (err == RT_EUNAUTHORIZED || state == RT_EUNAUTHORIZED || (state == 1 && !v1)) {
        ws_close(sub, 4001, "unauthorized");
        return;
    }
    if (err == RT_EFORBIDDEN || state == RT_EFORBIDDEN) {
        ws_close(sub, 4003, "forbidden");
        return;
    }
    if (err == RT_ERATELIMIT || state == RT_ERATELIMIT) { /* e.g. the connect proxy's backend answered 429 */
        ws_close(sub, 4029, "rate_limited");
        return;
    }
    if (err != RT_OK) {
        ws_close(sub, 1011, svc->strerror(err));
        return;
    }
    svc->sub_timer(sub, 0, rt_heartbeat_first_ms(ping_ms, sub), on_heartbeat);
    if (state == 1)
        svc->sub_timer(sub, 1, auth_timeout_ms, on_auth_timeout); /* rt.v1 may still send {"op":"auth"} */
}

static void ws_expiring(rt_sub_t *sub, int64_t seconds_left)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (c->mode == WS_MODE_V1) {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "{\"type\":\"expiring\",\"in_s\":%lld}", (long long)seconds_left);
        ws_send_text(sub, buf, (size_t)n);
    }
}

static void ws_dropped(rt_sub_t *sub, rt_str_t pattern)
{
    ws_conn_t *c = svc->sub_data(sub);
    if (c->mode == WS_MODE_V1)
        ws_ops_dropped(sub, pattern);
}

static const char *const ws_paths[] = {"/ws", NULL};
static const rt_cfg_key_t ws_config[] = {
    {"ping_interval", RT_CFG_DURATION, "25s", 100, 3600000},
    {"deflate", RT_CFG_BOOL, "true", 0, 0},
    {"deflate_threshold", RT_CFG_SIZE, "128", 0, 1 << 30},
    {"echo", RT_CFG_BOOL, "false", 0, 0},
    {"auth_timeout", RT_CFG_DURATION, "5s", 100, 3600000},
    {"auth_max_bytes", RT_CFG_SIZE, "16KiB", 1024, 1 << 24},
    {NULL, 0, NULL, 0, 0},
};

const rt_transport_t rt_transport_v1 = {
    .abi_version = RT_PLUGIN_ABI_VERSION,
    .name = "websocket",
    .paths = ws_paths,
    .config = ws_config,
    .cache_slots = 4,
    .init = ws_init,
    .claims = ws_claims,
    .start = ws_start,
    .deliver = ws_deliver,
    .gap = ws_gap,
    .end = ws_end,
    .release = ws_release,
    .receive = ws_receive,
    .expiring = ws_expiring,
    .dropped = ws_dropped,
};
