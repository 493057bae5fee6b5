/*
 * Socket.IO v5 packet parsing (type, namespace, ack id, JSON payload split into arguments) and a strict JSON
 * value scanner with bounded nesting. Pure functions on bytes from the network: every length is checked before
 * use, nothing allocates. The transport (socketio.c) and the fuzz target call them.
 */
#include <string.h>

#include "sio_packet.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static int is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static const char *scan_string(const char *p, const char *end)
{
    p++; /* the opening quote */
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (end - p < 2)
                return NULL;
            char e = p[1];
            if (e == 'u') {
                if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) || !is_hex(p[4]) || !is_hex(p[5]))
                    return NULL;
                p += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == '\0')
                return NULL;
            p += 2;
            continue;
        }
        p++;
    }
    return NULL;
}

static const char *scan_number(const char *p, const char *end)
{
    if (p < end && *p == '-')
        p++;
    if (p >= end)
        return NULL;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (p < end && *p == '.') {
        p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    return p;
}

static const char *scan_word(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

const char *sio_json_value(const char *p, const char *end, char *type, int depth)
{
    if (depth > SIO_MAX_DEPTH || p >= end)
        return NULL;
    char t;
    switch (*p) {
    case '"':
        *type = 's';
        return scan_string(p, end);
    case 't':
        *type = 't';
        return scan_word(p, end, "true");
    case 'f':
        *type = 'f';
        return scan_word(p, end, "false");
    case 'n':
        *type = 'z';
        return scan_word(p, end, "null");
    case '{':
    case '[': {
        int obj = *p == '{';
        char close = obj ? '}' : ']';
        *type = obj ? 'o' : 'a';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                if (p >= end || *p != '"' || (p = scan_string(p, end)) == NULL)
                    return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p = skip_ws(p + 1, end);
            }
            if ((p = sio_json_value(p, end, &t, depth + 1)) == NULL)
                return NULL;
            p = skip_ws(p, end);
            if (p >= end)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p = skip_ws(p + 1, end);
        }
    }
    default:
        *type = 'n';
        return scan_number(p, end);
    }
}

int sio_json_array(const char *base, size_t len, sio_slice_t *args, char *types, size_t max, const char **why)
{
    const char *p = base, *end = base + len;
    size_t n = 0;
    p = skip_ws(p, end);
    if (p >= end || *p != '[') {
        *why = "not a JSON array";
        return -1;
    }
    p = skip_ws(p + 1, end);
    if (p < end && *p == ']')
        return skip_ws(p + 1, end) == end ? 0 : (*why = "trailing bytes after the payload", -1);
    for (;;) {
        if (n == max) {
            *why = "too many elements";
            return -1;
        }
        char t;
        const char *v = sio_json_value(p, end, &t, 1);
        if (v == NULL) {
            *why = "invalid JSON payload";
            return -1;
        }
        args[n] = (sio_slice_t){p, (size_t)(v - p)};
        types[n++] = t;
        p = skip_ws(v, end);
        if (p < end && *p == ']')
            return skip_ws(p + 1, end) == end ? (int)n : (*why = "trailing bytes after the payload", -1);
        if (p >= end || *p != ',') {
            *why = "invalid JSON payload";
            return -1;
        }
        p = skip_ws(p + 1, end);
    }
}

int sio_parse(const char *p, size_t n, sio_packet_t *out, const char **why)
{
    const char *end = p + n;
    memset(out, 0, sizeof(*out));
    out->ack_id = -1;
    out->nsp = (sio_slice_t){"/", 1};
    if (n == 0 || *p < '0' || *p > '6') {
        *why = "unknown packet type";
        return -1;
    }
    out->type = *p++ - '0';
    if (out->type == SIO_BINARY_EVENT || out->type == SIO_BINARY_ACK) {
        *why = "binary packets are not supported (send JSON)";
        return -1;
    }
    if (p < end && *p == '/') {
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        if (p - s > 256) {
            *why = "namespace too long";
            return -1;
        }
        out->nsp = (sio_slice_t){s, (size_t)(p - s)};
        if (p < end)
            p++; /* the comma */
    }
    if (p < end && *p >= '0' && *p <= '9') {
        int64_t id = 0;
        int digits = 0;
        while (p < end && *p >= '0' && *p <= '9') {
            if (++digits > 15) {
                *why = "ack id too long";
                return -1;
            }
            id = id * 10 + (*p++ - '0');
        }
        out->ack_id = id;
    }
    out->data = (sio_slice_t){p, (size_t)(end - p)};
    if (p == end) {
        if (out->type == SIO_EVENT || out->type == SIO_ACK) {
            *why = "an event needs a JSON array";
            return -1;
        }
        return 0;
    }
    char t;
    const char *v = sio_json_value(p, end, &t, 0);
    if (v == NULL || skip_ws(v, end) != end) {
        *why = "invalid JSON payload";
        return -1;
    }
    switch (out->type) {
    case SIO_CONNECT:
        if (t != 'o') {
            *why = "the CONNECT payload must be an object";
            return -1;
        }
        return 0;
    case SIO_EVENT:
    case SIO_ACK:
        if (t != 'a') {
            *why = "an event needs a JSON array";
            return -1;
        }
        int n = sio_json_array(out->data.base, out->data.len, out->args, out->arg_type, SIO_MAX_ARGS, why);
        if (n < 0)
            return -1;
        out->nargs = (size_t)n;
        if (out->type == SIO_EVENT && (out->nargs == 0 || out->arg_type[0] != 's')) {
            *why = "an event's first element must be its name";
            return -1;
        }
        return 0;
    default:
        *why = "unexpected payload";
        return -1;
    }
}

size_t sio_json_escape(char *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n') {
            out[o++] = '\\', out[o++] = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            out[o++] = '\\', out[o++] = 'u', out[o++] = '0', out[o++] = '0';
            out[o++] = hex[c >> 4], out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    return o;
}
