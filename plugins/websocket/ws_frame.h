/* RFC 6455 framing: header parsing and building, unmasking, incremental UTF-8, close codes. Pure functions. */
#ifndef RT_WS_FRAME_H
#define RT_WS_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

typedef struct ws_frame {
    int fin, rsv1, rsv2, rsv3, opcode, masked;
    uint64_t len;           /* payload length */
    unsigned char mask[4];
    size_t header_len;
} ws_frame_t;

/* 1: a whole header was parsed into f; 0: more bytes are needed; -1: malformed (length with the top bit set). */
int ws_parse_header(const unsigned char *p, size_t n, ws_frame_t *f);
/* Writes a server (unmasked) frame header into out (at least 10 bytes); returns its length. */
size_t ws_build_header(unsigned char *out, int opcode, int fin, int rsv1, uint64_t len);
/* dst[i] = src[i] ^ mask[(offset + i) % 4]; dst may equal src. */
void ws_unmask(unsigned char *dst, const unsigned char *src, size_t n, const unsigned char mask[4], size_t offset);

/* Incremental UTF-8 validation, for messages that arrive in fragments. */
typedef struct ws_utf8 {
    uint8_t need, lo, hi;
} ws_utf8_t;
int ws_utf8_feed(ws_utf8_t *u, const unsigned char *p, size_t n); /* 0 valid so far, -1 invalid */
static inline int ws_utf8_complete(const ws_utf8_t *u) { return u->need == 0; }

/* Whether a close code received from a peer is allowed on the wire (RFC 6455 7.4, IANA registry). */
int ws_close_code_valid(unsigned code);

#endif
