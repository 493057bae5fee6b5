/* RFC 6455 framing helpers (see ws_frame.h). No allocation; every length is checked against the input. */
#include "ws_frame.h"

int ws_parse_header(const unsigned char *p, size_t n, ws_frame_t *f)
{
    if (n < 2)
        return 0;
    f->fin = p[0] >> 7;
    f->rsv1 = (p[0] >> 6) & 1;
    f->rsv2 = (p[0] >> 5) & 1;
    f->rsv3 = (p[0] >> 4) & 1;
    f->opcode = p[0] & 0x0f;
    f->masked = p[1] >> 7;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p[2 + i];
        if (len >> 63)
            return -1;
        h = 10;
    }
    if (f->masked) {
        if (n < h + 4)
            return 0;
        for (int i = 0; i < 4; i++)
            f->mask[i] = p[h + i];
        h += 4;
    }
    f->len = len;
    f->header_len = h;
    return 1;
}

size_t ws_build_header(unsigned char *out, int opcode, int fin, int rsv1, uint64_t len)
{
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

void ws_unmask(unsigned char *dst, const unsigned char *src, size_t n, const unsigned char mask[4], size_t offset)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = src[i] ^ mask[(offset + i) & 3];
}

int ws_utf8_feed(ws_utf8_t *u, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned c = p[i];
        if (u->need == 0) {
            if (c < 0x80)
                continue;
            u->lo = 0x80, u->hi = 0xbf;
            if (c >= 0xc2 && c <= 0xdf)
                u->need = 1;
            else if (c == 0xe0)
                u->need = 2, u->lo = 0xa0;
            else if ((c >= 0xe1 && c <= 0xec) || c == 0xee || c == 0xef)
                u->need = 2;
            else if (c == 0xed)
                u->need = 2, u->hi = 0x9f; /* no surrogates */
            else if (c == 0xf0)
                u->need = 3, u->lo = 0x90;
            else if (c >= 0xf1 && c <= 0xf3)
                u->need = 3;
            else if (c == 0xf4)
                u->need = 3, u->hi = 0x8f; /* nothing above U+10FFFF */
            else
                return -1;
        } else {
            if (c < u->lo || c > u->hi)
                return -1;
            u->need--;
            u->lo = 0x80, u->hi = 0xbf;
        }
    }
    return 0;
}

int ws_close_code_valid(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008: case 1009: case 1010: case 1011: case 1012:
    case 1013: case 1014:
        return 1;
    default:
        return 0;
    }
}
