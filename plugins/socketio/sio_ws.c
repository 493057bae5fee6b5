/*
 * The WebSocket side of the Socket.IO transport: the 101 (its own, or as the upgrade of a polling session: probe,
 * then "5" moves the session's Socket.IO state onto this connection), RFC 6455 framing with ws_frame from the
 * WebSocket plugin's folder, Engine.IO packets one per text message, server pings and the pong timeout.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sio.h"

#define svc sio_svc

void sio_ws_send(rt_sub_t *sub, const char *text, size_t len)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->close_sent)
        return;
    unsigned char hdr[10];
    size_t h = ws_build_header(hdr, WS_TEXT, 1, 0, len);
    char *f = malloc(h + len);
    if (f == NULL)
        abort();
    memcpy(f, hdr, h);
    memcpy(f + h, text, len);
    svc->write_copy(sub, f, h + len);
    free(f);
}

static void on_linger_end(rt_sub_t *sub) { svc->sub_close(sub); }

void sio_ws_close(rt_sub_t *sub, unsigned code, const char *reason)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (!c->close_sent) {
        unsigned char p[2 + 64], hdr[10];
        size_t rl = strlen(reason) > 64 ? 64 : strlen(reason);
        p[0] = (unsigned char)(code >> 8), p[1] = (unsigned char)code;
        memcpy(p + 2, reason, rl);
        size_t h = ws_build_header(hdr, WS_CLOSE, 1, 0, 2 + rl);
        svc->write_copy(sub, (const char *)hdr, h);
        svc->write_copy(sub, (const char *)p, 2 + rl);
        c->close_sent = 1;
    }
    c->closed_in = 1;
    svc->sub_timer(sub, 0, 0, NULL);
    svc->sub_timer(sub, 1, 500, on_linger_end); /* let the close frame go out before the socket does */
}

/* ---------- heartbeats: a ping every ping_interval, a pong within ping_timeout ---------- */

static void on_ping_due(rt_sub_t *sub);

static void on_pong_check(rt_sub_t *sub)
{
    sio_conn_t *c = svc->sub_data(sub);
    if (c->pong_pending) {
        sio_ws_close(sub, 1000, "ping timeout");
        return;
    }
    svc->sub_timer(sub, 0, sio_ping_interval > sio_ping_timeout ? sio_ping_interval - sio_ping_timeout : 1, on_ping_due);
}

static void on_ping_due(rt_sub_t *sub)
{
    sio_conn_t *c = svc->sub_data(sub);
    sio_ws_send(sub, "2", 1);
    c->pong_pending = 1;
    svc->sub_timer(sub, 0, sio_ping_timeout, on_pong_check);
}

/* ---------- the handshake ---------- */

static int has_token(rt_str_t h, const char *token)
{
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= h.len; i++)
        if (strncasecmp(h.base + i, token, n) == 0)
            return 1;
    return 0;
}

void sio_ws_start(rt_request_t *req, sio_session_t *probing, int echo, int refuse)
{
    rt_str_t key = svc->req_header(req, "sec-websocket-key"), version = svc->req_header(req, "sec-websocket-version");
    unsigned char raw[32];
    if (!has_token(svc->req_header(req, "upgrade"), "websocket") || version.len != 2 || memcmp(version.base, "13", 2) ||
        key.len != 24 || EVP_DecodeBlock(raw, (const unsigned char *)key.base, 24) != 18) {
        svc->respond(req, 400, "application/json", "{\"code\":3,\"message\":\"Bad request\"}", 34);
        return;
    }
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char buf[24 + sizeof(guid)], digest[SHA_DIGEST_LENGTH];
    char accept[32];
    memcpy(buf, key.base, 24);
    memcpy(buf + 24, guid, sizeof(guid) - 1);
    SHA1(buf, 24 + sizeof(guid) - 1, digest);
    EVP_EncodeBlock((unsigned char *)accept, digest, SHA_DIGEST_LENGTH);

    rt_sub_t *sub = svc->sub_open(req, &rt_transport_v1, sizeof(sio_conn_t));
    sio_conn_t *c = svc->sub_data(sub);
    c->kind = CONN_WS;
    c->echo = echo;
    if (probing && !refuse) {
        c->probe_sid = 1;
        memcpy(c->sid, probing->sid, sizeof(c->sid));
    }
    const char *headers[] = {"upgrade", "websocket", "sec-websocket-accept", accept, NULL};
    if (svc->upgrade(sub, headers) != RT_OK) {
        svc->respond(req, 400, "application/json", "{\"code\":3,\"message\":\"Bad request\"}", 34);
        return;
    }
    if (refuse) {
        sio_ws_close(sub, 1008, "this session has upgraded already");
        return;
    }
    if (!probing) { /* WebSocket from the start: the handshake is the first message */
        char sid[SIO_ID_LEN + 1], open[256];
        sio_random_id(sid);
        int n = sio_handshake_packet(open, sizeof(open), sid, 0);
        sio_ws_send(sub, open, (size_t)n);
        svc->sub_timer(sub, 0, sio_ping_interval, on_ping_due);
    }
}

/* "5": the polling session's socket, its queued packets and its topics move here. */
static void adopt(rt_sub_t *sub, sio_conn_t *c)
{
    pthread_mutex_lock(&sio_lock);
    sio_session_t *s = sio_session_find(c->sid, SIO_ID_LEN);
    if (s == NULL || s->dead) {
        pthread_mutex_unlock(&sio_lock);
        sio_ws_close(sub, 1000, "session closed");
        return;
    }
    c->st = s->st;
    memset(&s->st, 0, sizeof(s->st));
    s->upgraded = 1;
    c->probe_sid = 2;
    for (size_t i = 0; i < s->out_len;) {
        size_t j = i;
        while (j < s->out_len && s->out[j] != '\x1e')
            j++;
        sio_ws_send(sub, s->out + i, j - i);
        i = j + 1;
    }
    s->out_len = 0;
    pthread_mutex_unlock(&sio_lock);
    if (c->st.connected && sio_proxy_sub && c->st.ntopics) {
        sio_adopt_ask(sub, c); /* proxy.subscribe: another connection, asked about again */
    } else if (c->st.connected && sio_state_subscribe(sub, &c->st, 0) != RT_OK) {
        sio_state_free(&c->st, 0);
        sio_ws_send(sub, "41", 2);
    }
    svc->sub_timer(sub, 0, sio_ping_interval, on_ping_due);
}

static void eio_packet(rt_sub_t *sub, sio_conn_t *c, const char *p, size_t n)
{
    if (c->probe_sid == 1) { /* probing: only "2probe" and "5" mean something */
        if (n == 6 && memcmp(p, "2probe", 6) == 0) {
            sio_ws_send(sub, "3probe", 6);
            pthread_mutex_lock(&sio_lock);
            sio_session_t *s = sio_session_find(c->sid, SIO_ID_LEN);
            if (s)
                s->probing = 1; /* the held GET answers a noop */
            pthread_mutex_unlock(&sio_lock);
        } else if (n == 1 && p[0] == '5') {
            adopt(sub, c);
        }
        return;
    }
    if (n == 0) {
        sio_ws_close(sub, 1002, "empty packet");
        return;
    }
    sio_io_t io = {sub, &c->st, NULL, 0};
    switch (p[0]) {
    case '1':
        sio_ws_close(sub, 1000, "");
        return;
    case '2':
        sio_ws_send(sub, n == 6 && memcmp(p, "2probe", 6) == 0 ? "3probe" : "3", n == 6 ? 6 : 1);
        return;
    case '3':
        c->pong_pending = 0;
        return;
    case '4':
        if (c->echo)
            sio_ws_send(sub, p, n);
        else if (sio_handle(&io, p + 1, n - 1) != 0)
            sio_ws_close(sub, 1002, "malformed Socket.IO packet");
        return;
    case '6':
        return;
    default:
        sio_ws_close(sub, 1002, "unknown Engine.IO packet");
    }
}

/* ---------- frames ---------- */

size_t sio_ws_receive(rt_sub_t *sub, const char *bytes, size_t len)
{
    sio_conn_t *c = svc->sub_data(sub);
    const unsigned char *in = (const unsigned char *)bytes;
    size_t off = 0;
    while (off < len && !c->closed_in) {
        ws_frame_t f;
        int r = ws_parse_header(in + off, len - off, &f);
        if (r == 0)
            break;
        if (r < 0 || !f.masked || f.rsv1 || f.rsv2 || f.rsv3) {
            sio_ws_close(sub, 1002, "protocol error");
            return len;
        }
        int control = f.opcode & 8;
        if ((control && (f.len > 125 || !f.fin)) || (!control && f.len + c->msg_len > sio_max_payload)) {
            sio_ws_close(sub, control ? 1002 : 1009, control ? "bad control frame" : "over maxPayload");
            return len;
        }
        if ((f.opcode == WS_BINARY && !c->echo) || (f.opcode == WS_CONT && c->msg_opcode == 0) ||
            ((f.opcode == WS_TEXT || f.opcode == WS_BINARY) && c->msg_opcode)) {
            sio_ws_close(sub, 1003, f.opcode == WS_BINARY ? "binary packets are not supported" : "bad fragment");
            return len;
        }
        if (len - off < f.header_len + f.len)
            break;
        const unsigned char *payload = in + off + f.header_len;
        off += f.header_len + (size_t)f.len;
        if (control) {
            unsigned char p[125], hdr[10];
            ws_unmask(p, payload, (size_t)f.len, f.mask, 0);
            if (f.opcode == WS_PING && !c->close_sent) {
                size_t h = ws_build_header(hdr, WS_PONG, 1, 0, f.len);
                svc->write_copy(sub, (const char *)hdr, h);
                svc->write_copy(sub, (const char *)p, (size_t)f.len);
            } else if (f.opcode == WS_CLOSE) {
                if (!c->close_sent)
                    sio_ws_close(sub, 1000, "");
                svc->sub_close(sub);
                return len;
            }
            continue;
        }
        if (c->msg_len + f.len > c->msg_cap) {
            c->msg_cap = c->msg_len + (size_t)f.len;
            c->msg = realloc(c->msg, c->msg_cap);
            if (c->msg == NULL)
                abort();
        }
        ws_unmask(c->msg + c->msg_len, payload, (size_t)f.len, f.mask, 0);
        c->msg_len += (size_t)f.len;
        if (f.opcode != WS_CONT)
            c->msg_opcode = f.opcode;
        if (!f.fin)
            continue;
        if (c->msg_opcode == WS_BINARY) { /* echo mode only: a binary message comes back as is */
            unsigned char hdr[10];
            size_t h = ws_build_header(hdr, WS_BINARY, 1, 0, c->msg_len);
            svc->write_copy(sub, (const char *)hdr, h);
            svc->write_copy(sub, (const char *)c->msg, c->msg_len);
            c->msg_len = 0;
            c->msg_opcode = 0;
            continue;
        }
        if (!svc->utf8_valid((const char *)c->msg, c->msg_len)) {
            sio_ws_close(sub, 1007, "invalid UTF-8");
            return len;
        }
        eio_packet(sub, c, (const char *)c->msg, c->msg_len);
        c->msg_len = 0;
        c->msg_opcode = 0;
    }
    return c->closed_in ? len : off;
}

void sio_ws_release(rt_sub_t *sub, sio_conn_t *c)
{
    (void)sub;
    if (c->probe_sid) {
        pthread_mutex_lock(&sio_lock);
        sio_session_t *s = sio_session_find(c->sid, SIO_ID_LEN);
        if (s && s->upgraded)
            sio_session_remove(s);
        else if (s)
            s->probing = 0; /* the probe failed: polling goes on */
        pthread_mutex_unlock(&sio_lock);
    }
    sio_state_free(&c->st, 1);
    free(c->msg);
}
