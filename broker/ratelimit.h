/* Token-bucket rate limits keyed by client IP or token subject (shared by all workers). */
#ifndef RT_RATELIMIT_H
#define RT_RATELIMIT_H

#include "rt.h"

typedef struct rt_bucket {
    double tokens;
    uint64_t last_ms;
} rt_bucket_t;

/* One take from a bucket refilled at rate per second (burst = rate); 1 allowed, 0 limited. rate 0 = no limit. */
int rt_bucket_take(rt_bucket_t *b, double rate, uint64_t now_ms);
/* The same on a shared bucket named by kind ('c' connections, 's' publish subject) and key. */
int rt_rate_allow(char kind, rt_str_t key, double rate);
/* Drops buckets idle for a while (called once a second by one worker). */
void rt_rate_sweep(void);

#endif
