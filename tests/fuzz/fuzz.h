/* Shared bits of the libFuzzer targets: an assertion that stops the run with a message (libFuzzer then saves
 * the input), and splitting an input into lines. */
#ifndef RT_FUZZ_H
#define RT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rtbroker/plugin.h"

/* A property the code must keep: broken, the run stops and the input becomes a crash artifact. */
#define FUZZ_ASSERT(cond)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            fprintf(stderr, "fuzz property broken: %s (%s:%d)\n", #cond, __FILE__, __LINE__);                          \
            abort();                                                                                                   \
        }                                                                                                              \
    } while (0)

/* Reads every byte of s, so that ASan reports a slice that is not readable to its end. */
static inline void fuzz_touch(rt_str_t s)
{
    volatile unsigned char x = 0;
    for (size_t i = 0; i < s.len; i++)
        x ^= (unsigned char)s.base[i];
    (void)x;
}

/* The next '\n'-terminated line of the input from *pos (without the '\n'); 0 when the input is used up. */
static inline int fuzz_line(const uint8_t *data, size_t size, size_t *pos, rt_str_t *line)
{
    if (*pos >= size)
        return 0;
    const uint8_t *nl = memchr(data + *pos, '\n', size - *pos);
    size_t end = nl ? (size_t)(nl - data) : size;
    *line = (rt_str_t){(const char *)data + *pos, end - *pos};
    *pos = end + 1;
    return 1;
}

#endif
