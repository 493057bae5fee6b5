/*
 * Unit test for broker/map.c under a hash-flooding attack: 60,000 topic names crafted so that
 * their FNV-1a hashes (the maps' hash before they were keyed) agree in the low 20 bits, which
 * chose the bucket, must spread over the buckets like ordinary names. Asserts on the chains
 * (the probes that looking every key up costs), not on time; the times are printed as figures.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "map.h"
#include "unit.h"

#define NKEYS 60000
#define STAGES 16    /* 2^16 crafted names */
#define LOWBITS 20   /* the names collide in this many low bits: any table up to 2^20 buckets */
#define KEYLEN (6 + 3 * STAGES)

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}
#define FNV_BASIS 1469598103934665603ULL

static void block_of(unsigned v, char out[3])
{
    for (int i = 0; i < 3; i++, v >>= 6)
        out[i] = alphabet[v & 63];
}

/*
 * A multicollision (Joux): FNV-1a's low bits depend only on the low bits of the state before, so at each stage two
 * 3-character blocks that lead to the same low bits (a birthday search over 64^3 blocks) can be swapped without
 * changing the low bits of anything after. STAGES independent choices of two give 2^STAGES names.
 */
static char *craft(size_t n)
{
    static uint32_t seen[1u << LOWBITS]; /* low bits -> block + 1, for the current stage */
    char pairs[STAGES][2][3];
    uint64_t h = fnv1a(FNV_BASIS, "flood.", 6);
    const uint64_t mask = (1u << LOWBITS) - 1;
    for (int s = 0; s < STAGES; s++) {
        memset(seen, 0, sizeof(seen));
        int found = 0;
        for (unsigned v = 0; v < 64 * 64 * 64 && !found; v++) {
            char b[3];
            block_of(v, b);
            uint64_t low = fnv1a(h, b, 3) & mask;
            if (seen[low] == 0) {
                seen[low] = v + 1;
                continue;
            }
            block_of(seen[low] - 1, pairs[s][0]);
            memcpy(pairs[s][1], b, 3);
            h = fnv1a(h, b, 3);
            found = 1;
        }
        if (!found)
            return NULL;
    }
    char *keys = rt_malloc(n * KEYLEN);
    for (size_t k = 0; k < n; k++) {
        char *p = keys + k * KEYLEN;
        memcpy(p, "flood.", 6);
        for (int s = 0; s < STAGES; s++)
            memcpy(p + 6 + 3 * s, pairs[s][(k >> s) & 1], 3);
    }
    return keys;
}

static char *ordinary(size_t n)
{
    char *keys = rt_malloc(n * KEYLEN);
    for (size_t k = 0; k < n; k++)
        snprintf(keys + k * KEYLEN, KEYLEN, "%-*zu", KEYLEN - 1, k), keys[k * KEYLEN + KEYLEN - 1] = 'x';
    return keys;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
    size_t longest, probes; /* probes: entries visited to look every key up once */
    double seconds;         /* NKEYS inserts then NKEYS lookups */
    int all_found;
} figures_t;

static figures_t fill(const char *keys, size_t n)
{
    figures_t f = {0, 0, 0, 1};
    rt_map_t m = {0};
    double t0 = now_s();
    for (size_t k = 0; k < n; k++)
        rt_map_put(&m, rt_str(keys + k * KEYLEN, KEYLEN), (void *)(keys + k * KEYLEN));
    for (size_t k = 0; k < n; k++)
        f.all_found &= rt_map_get(&m, rt_str(keys + k * KEYLEN, KEYLEN)) == keys + k * KEYLEN;
    f.seconds = now_s() - t0;
    for (size_t b = 0; b < m.nbuckets; b++) {
        size_t len = 0;
        for (rt_map_entry_t *e = m.buckets[b]; e; e = e->next)
            len++;
        f.probes += len * (len + 1) / 2;
        if (len > f.longest)
            f.longest = len;
    }
    f.all_found &= m.count == n;
    rt_map_free(&m);
    return f;
}

int main(void)
{
    CASE("the crafted names are distinct, valid topic characters, and collide in FNV-1a's low 20 bits");
    double t0 = now_s();
    char *crafted = craft(NKEYS);
    double craft_s = now_s() - t0;
    CHECK(crafted != NULL);
    if (crafted == NULL)
        return UNIT_DONE();
    uint64_t low0 = fnv1a(FNV_BASIS, crafted, KEYLEN) & ((1u << LOWBITS) - 1);
    int same = 1;
    for (size_t k = 1; k < NKEYS; k++)
        same &= (fnv1a(FNV_BASIS, crafted + k * KEYLEN, KEYLEN) & ((1u << LOWBITS) - 1)) == low0;
    CHECK(same);
    CHECK(memcmp(crafted, crafted + KEYLEN, KEYLEN) != 0);

    CASE("60,000 crafted names spread like ordinary ones: short chains, linear lookup cost");
    char *plain = ordinary(NKEYS);
    figures_t o = fill(plain, NKEYS), c = fill(crafted, NKEYS);
    printf("  %d crafted names made in %.3f s; inserts+lookups: crafted %.3f s (longest chain %zu, %zu probes), "
           "ordinary %.3f s (longest chain %zu, %zu probes)\n",
           NKEYS, craft_s, c.seconds, c.longest, c.probes, o.seconds, o.longest, o.probes);
    CHECK(c.all_found && o.all_found);
    /* a random hash puts at most ~10 of 60,000 keys in one of 65,536 buckets; FNV-1a put all of them in one */
    CHECK(c.longest <= 24);
    CHECK(o.longest <= 24);
    /* looking every key up: ~1.5 probes each when spread, 30,000 each (n/2) when they share a chain */
    CHECK(c.probes <= 3 * (size_t)NKEYS);
    CHECK(c.probes <= 2 * o.probes + NKEYS);
    free(crafted);
    free(plain);
    return UNIT_DONE();
}
