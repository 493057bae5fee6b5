/* SipHash (Aumasson and Bernstein, 2012): a keyed 64-bit hash, so that a client cannot choose keys that collide. */
#ifndef RT_SIPHASH_H
#define RT_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-c-d of data under the 16-byte key (c rounds per 8-byte word, d at the end); the maps use 1-3. */
uint64_t rt_siphash(const uint8_t key[16], const void *data, size_t len, int crounds, int drounds);

#endif
