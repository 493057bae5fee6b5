/*
 * SipHash-c-d, written from the paper ("SipHash: a fast short-input PRF", section 2):
 * four 64-bit words of state keyed by k0 and k1, each 8-byte little-endian word of the
 * input mixed in with c rounds, the length in the last word's top byte, d rounds to end.
 * Owns nothing but the function; it knows no map and no key.
 */
#include "siphash.h"

static inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--)
        w = (w << 8) | p[i];
    return w;
}

typedef struct {
    uint64_t v0, v1, v2, v3;
} sip_t;

static inline void rounds(sip_t *s, int n)
{
    for (int i = 0; i < n; i++) {
        s->v0 += s->v1, s->v2 += s->v3;
        s->v1 = rotl(s->v1, 13), s->v3 = rotl(s->v3, 16);
        s->v1 ^= s->v0, s->v3 ^= s->v2;
        s->v0 = rotl(s->v0, 32);
        s->v2 += s->v1, s->v0 += s->v3;
        s->v1 = rotl(s->v1, 17), s->v3 = rotl(s->v3, 21);
        s->v1 ^= s->v2, s->v3 ^= s->v0;
        s->v2 = rotl(s->v2, 32);
    }
}

static inline void absorb(sip_t *s, uint64_t m, int c)
{
    s->v3 ^= m;
    rounds(s, c);
    s->v0 ^= m;
}

uint64_t rt_siphash(const uint8_t key[16], const void *data, size_t len, int crounds, int drounds)
{
    const uint8_t *p = data;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    /* "somepseudorandomlygeneratedbytes" */
    sip_t s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL, k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8)
        absorb(&s, le64(p + i), crounds);
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = whole; i < len; i++)
        last |= (uint64_t)p[i] << (8 * (i - whole));
    absorb(&s, last, crounds);
    s.v2 ^= 0xff;
    rounds(&s, drounds);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}
