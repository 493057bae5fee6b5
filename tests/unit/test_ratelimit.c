/* Unit tests for broker/ratelimit.c: the token bucket, and a shared bucket taken from several threads at once,
 * where a clock read before the lock may be older than the last take (it once refilled the bucket). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include "ratelimit.h"
#include "unit.h"

#define THREADS 4
#define TRIES 20000

static int allowed[THREADS];

static void *flood(void *arg)
{
    int *n = arg;
    for (int i = 0; i < TRIES; i++)
        *n += rt_rate_allow('s', rt_cstr("10.0.0.1"), 50);
    return NULL;
}

int main(void)
{
    rt_bucket_t b = {0};
    CASE("a full bucket of 10, then one per 100 ms");
    int got = 0;
    for (int i = 0; i < 20; i++)
        got += rt_bucket_take(&b, 10, 1000);
    CHECK(got == 10);
    CHECK(rt_bucket_take(&b, 10, 1100) == 1);
    CHECK(rt_bucket_take(&b, 10, 1100) == 0);

    CASE("a clock older than the last take adds nothing");
    CHECK(rt_bucket_take(&b, 10, 900) == 0);
    CHECK(rt_bucket_take(&b, 10, 1) == 0);
    CHECK(rt_bucket_take(&b, 10, 1150) == 0); /* still 50 ms after 1100: half a token */
    CHECK(rt_bucket_take(&b, 10, 1200) == 1);

    CASE("4 threads flooding one key at 50/s pass the bucket and the time it took, not more");
    pthread_t t[THREADS];
    uint64_t t0 = rt_now_ms();
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, flood, &allowed[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    uint64_t ms = rt_now_ms() - t0;
    int total = 0;
    for (int i = 0; i < THREADS; i++)
        total += allowed[i];
    int bound = 50 + (int)(50 * ms / 1000) + 1;
    if (total > bound)
        printf("  %d of %d passed in %llu ms (bound %d)\n", total, THREADS * TRIES, (unsigned long long)ms, bound);
    CHECK(total <= bound);
    CHECK(total >= 50);
    return UNIT_DONE();
}
