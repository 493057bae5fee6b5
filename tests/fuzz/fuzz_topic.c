/* Topic grammar, matching and coverage (broker/topic.c) and the subscription index (broker/index.c).
 * Input lines: a topic to publish to, then up to 16 subscription patterns. The index must call back exactly
 * the patterns rt_topic_match accepts, and coverage must agree with matching. */
#include "fuzz.h"
#include "index.h"
#include "topic.h"

#define MAX_PATTERNS 16

typedef struct hits {
    int count[MAX_PATTERNS];
} hits_t;

static void on_match(rt_subscription_t *s, void *ctx)
{
    hits_t *h = ctx;
    h->count[(int)(intptr_t)s->owner]++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    rt_str_t topic, pats[MAX_PATTERNS];
    int npats = 0;
    if (!fuzz_line(data, size, &pos, &topic))
        return 0;
    while (npats < MAX_PATTERNS && fuzz_line(data, size, &pos, &pats[npats]))
        npats++;

    int wild = -1;
    int exact = rt_topic_check(topic, 0, NULL) == RT_OK;
    int as_pattern = rt_topic_check(topic, 1, &wild) == RT_OK;
    FUZZ_ASSERT(!exact || (as_pattern && wild == 0)); /* a topic is a pattern without wildcards */
    FUZZ_ASSERT(!as_pattern || wild || exact);
    if (exact) {
        FUZZ_ASSERT(rt_topic_match(topic, topic));
        FUZZ_ASSERT(rt_topic_covers(topic, topic));
    }

    rt_index_t ix;
    rt_index_init(&ix);
    rt_subscription_t *subs[MAX_PATTERNS] = {0};
    int valid[MAX_PATTERNS] = {0};
    for (int i = 0; i < npats; i++) {
        if (rt_topic_check(pats[i], 1, NULL) != RT_OK)
            continue;
        valid[i] = 1;
        FUZZ_ASSERT(rt_topic_covers(pats[i], pats[i]));
        subs[i] = rt_index_add(&ix, pats[i], (void *)(intptr_t)i);
        if (exact) /* an exact topic is covered by a grant exactly when the grant matches it */
            FUZZ_ASSERT(rt_topic_covers(pats[i], topic) == rt_topic_match(pats[i], topic));
    }
    for (int g = 0; g < npats; g++) {
        for (int p = 0; p < npats && valid[g]; p++) {
            if (!valid[p] || !rt_topic_covers(pats[g], pats[p]))
                continue;
            if (exact && rt_topic_match(pats[p], topic)) /* what p matches, a grant covering p matches */
                FUZZ_ASSERT(rt_topic_match(pats[g], topic));
            for (int q = 0; q < npats; q++) /* coverage is transitive */
                if (valid[q] && rt_topic_covers(pats[p], pats[q]))
                    FUZZ_ASSERT(rt_topic_covers(pats[g], pats[q]));
        }
    }
    if (exact) {
        hits_t h = {{0}};
        rt_index_match(&ix, topic, on_match, &h);
        for (int i = 0; i < npats; i++)
            FUZZ_ASSERT(h.count[i] == (valid[i] && rt_topic_match(pats[i], topic)));
    }
    for (int i = 0; i < npats; i++) /* remove in an order the input picks, so the trie is pruned both ways */
        if (subs[(i + size) % npats])
            rt_index_remove(&ix, subs[(i + size) % npats]);
    FUZZ_ASSERT(ix.count == 0);
    rt_index_dispose(&ix);
    return 0;
}
