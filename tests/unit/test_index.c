/* Unit tests for the per-worker subscription index (broker/index.h). */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "unit.h"

#define NOWNERS 16

static int owners[NOWNERS]; /* their addresses are the owners */

typedef struct {
    int per_owner[NOWNERS];
    int total;
    int foreign;    /* owner not in owners[] */
    int mismatched; /* called back for a pattern that does not match the topic */
    rt_str_t topic;
    rt_subscription_t *seen[2048];
    int nseen;
} hits_t;

static void on_match(rt_subscription_t *s, void *ctx)
{
    hits_t *h = ctx;
    h->total++;
    int *o = s->owner;
    if (o >= owners && o < owners + NOWNERS)
        h->per_owner[o - owners]++;
    else
        h->foreign++;
    if (!rt_topic_match(s->pattern, h->topic))
        h->mismatched++;
    if (h->nseen < (int)(sizeof(h->seen) / sizeof(*h->seen)))
        h->seen[h->nseen++] = s;
}

static hits_t run(rt_index_t *ix, const char *topic)
{
    hits_t h;
    memset(&h, 0, sizeof(h));
    h.topic = rt_cstr(topic);
    rt_index_match(ix, h.topic, on_match, &h);
    return h;
}

static int was_seen(const hits_t *h, const rt_subscription_t *s)
{
    int n = 0;
    for (int i = 0; i < h->nseen; i++)
        n += h->seen[i] == s;
    return n;
}

#define O(i) ((void *)&owners[(i)])

static void test_basic(void)
{
    rt_index_t ix;
    rt_index_init(&ix);

    CASE("empty index matches nothing");
    hits_t h = run(&ix, "chat.room1");
    CHECK(h.total == 0);
    CHECK(ix.count == 0);

    CASE("add exact and wildcard subscriptions");
    rt_subscription_t *a1 = rt_index_add(&ix, rt_cstr("chat.room1"), O(0));
    rt_subscription_t *a2 = rt_index_add(&ix, rt_cstr("*.room1"), O(0)); /* overlaps a1 */
    rt_subscription_t *b1 = rt_index_add(&ix, rt_cstr("chat.*"), O(1));
    rt_subscription_t *b2 = rt_index_add(&ix, rt_cstr(">"), O(1));
    rt_subscription_t *c1 = rt_index_add(&ix, rt_cstr("chat.>"), O(2));
    rt_subscription_t *c2 = rt_index_add(&ix, rt_cstr("news.sports"), O(2));
    rt_subscription_t *d1 = rt_index_add(&ix, rt_cstr("a.*.c"), O(3));
    CHECK(a1 && a2 && b1 && b2 && c1 && c2 && d1);
    CHECK(ix.count == 7);
    CHECK(a1->owner == O(0) && rt_str_eqc(a1->pattern, "chat.room1"));
    CHECK(b1->owner == O(1) && rt_str_eqc(b1->pattern, "chat.*"));
    CHECK(c1->owner == O(2) && rt_str_eqc(c1->pattern, "chat.>"));

    CASE("exact counts: the subscriptions naming a topic, patterns left out");
    CHECK(rt_index_exact_count(&ix, rt_cstr("chat.room1")) == 1);
    CHECK(rt_index_exact_count(&ix, rt_cstr("news.sports")) == 1);
    CHECK(rt_index_exact_count(&ix, rt_cstr("chat.room2")) == 0);
    CHECK(rt_index_exact_count(&ix, rt_cstr("chat.*")) == 0);
    rt_subscription_t *a3 = rt_index_add(&ix, rt_cstr("chat.room1"), O(3));
    CHECK(rt_index_exact_count(&ix, rt_cstr("chat.room1")) == 2);
    rt_index_remove(&ix, a3);
    CHECK(rt_index_exact_count(&ix, rt_cstr("chat.room1")) == 1);

    CASE("match chat.room1: overlapping patterns of one owner are each called");
    h = run(&ix, "chat.room1");
    CHECK(h.per_owner[0] == 2);
    CHECK(h.per_owner[1] == 2);
    CHECK(h.per_owner[2] == 1);
    CHECK(h.per_owner[3] == 0);
    CHECK(h.total == 5);
    CHECK(h.mismatched == 0 && h.foreign == 0);
    CHECK(was_seen(&h, a1) == 1 && was_seen(&h, a2) == 1 && was_seen(&h, b1) == 1 && was_seen(&h, b2) == 1 &&
          was_seen(&h, c1) == 1);
    CHECK(was_seen(&h, c2) == 0 && was_seen(&h, d1) == 0);

    CASE("match chat: chat.> and chat.* do not match the bare prefix");
    h = run(&ix, "chat");
    CHECK(h.per_owner[0] == 0);
    CHECK(h.per_owner[1] == 1 && was_seen(&h, b2) == 1);
    CHECK(h.per_owner[2] == 0);
    CHECK(h.total == 1);

    CASE("match chat.room1.x: only '>' patterns reach deeper");
    h = run(&ix, "chat.room1.x");
    CHECK(h.per_owner[0] == 0);
    CHECK(h.per_owner[1] == 1 && was_seen(&h, b2));
    CHECK(h.per_owner[2] == 1 && was_seen(&h, c1));
    CHECK(h.total == 2);

    CASE("match other topics");
    h = run(&ix, "news.sports");
    CHECK(h.per_owner[2] == 1 && was_seen(&h, c2));
    CHECK(h.per_owner[1] == 1);
    CHECK(h.total == 2);
    h = run(&ix, "x.room1");
    CHECK(h.per_owner[0] == 1 && was_seen(&h, a2));
    CHECK(h.total == 2);
    h = run(&ix, "a.b.c");
    CHECK(h.per_owner[3] == 1 && was_seen(&h, d1));
    CHECK(h.total == 2);
    h = run(&ix, "a.b.d");
    CHECK(h.per_owner[3] == 0 && h.total == 1);
    h = run(&ix, "chat.room10");
    CHECK(h.per_owner[0] == 0 && h.per_owner[1] == 2 && h.per_owner[2] == 1 && h.total == 3);
    h = run(&ix, "news.sport");
    CHECK(h.total == 1 && h.per_owner[2] == 0);
    h = run(&ix, "news.sports.live");
    CHECK(h.total == 1 && h.per_owner[2] == 0);

    CASE("remove one at a time");
    rt_index_remove(&ix, a1);
    CHECK(ix.count == 6);
    CHECK(rt_index_exact_count(&ix, rt_cstr("chat.room1")) == 0);
    h = run(&ix, "chat.room1");
    CHECK(h.per_owner[0] == 1 && was_seen(&h, a2));
    CHECK(h.total == 4);
    rt_index_remove(&ix, b2);
    h = run(&ix, "chat.room1");
    CHECK(h.per_owner[1] == 1 && h.total == 3);
    h = run(&ix, "chat");
    CHECK(h.total == 0);
    rt_index_remove(&ix, c1);
    h = run(&ix, "chat.room1.x");
    CHECK(h.total == 0);
    h = run(&ix, "chat.room1");
    CHECK(h.per_owner[0] == 1 && h.per_owner[1] == 1 && h.per_owner[2] == 0 && h.total == 2);
    rt_index_remove(&ix, a2);
    rt_index_remove(&ix, b1);
    rt_index_remove(&ix, c2);
    rt_index_remove(&ix, d1);
    CHECK(ix.count == 0);

    CASE("after removing everything nothing matches");
    const char *topics[] = {"chat.room1", "chat", "chat.room1.x", "news.sports", "x.room1", "a.b.c"};
    int any = 0;
    for (size_t i = 0; i < sizeof(topics) / sizeof(*topics); i++)
        any += run(&ix, topics[i]).total;
    CHECK(any == 0);

    CASE("the emptied index works again");
    rt_subscription_t *e1 = rt_index_add(&ix, rt_cstr("chat.>"), O(4));
    rt_subscription_t *e2 = rt_index_add(&ix, rt_cstr("chat.room1"), O(5));
    h = run(&ix, "chat.room1");
    CHECK(h.per_owner[4] == 1 && h.per_owner[5] == 1 && h.total == 2);
    h = run(&ix, "chat.room2.z");
    CHECK(h.per_owner[4] == 1 && h.total == 1);
    rt_index_remove(&ix, e1);
    rt_index_remove(&ix, e2);
    CHECK(ix.count == 0);
    CHECK(run(&ix, "chat.room1").total == 0);
    rt_index_dispose(&ix);
}

static void test_duplicates_and_shapes(void)
{
    rt_index_t ix;
    rt_index_init(&ix);

    CASE("the same pattern twice for one owner gives two callbacks");
    rt_subscription_t *s1 = rt_index_add(&ix, rt_cstr("t.x"), O(0));
    rt_subscription_t *s2 = rt_index_add(&ix, rt_cstr("t.x"), O(0));
    rt_subscription_t *w1 = rt_index_add(&ix, rt_cstr("t.*"), O(1));
    rt_subscription_t *w2 = rt_index_add(&ix, rt_cstr("t.*"), O(1));
    CHECK(s1 != s2 && w1 != w2);
    hits_t h = run(&ix, "t.x");
    CHECK(h.per_owner[0] == 2 && h.per_owner[1] == 2);
    rt_index_remove(&ix, s1);
    rt_index_remove(&ix, w2);
    h = run(&ix, "t.x");
    CHECK(h.per_owner[0] == 1 && was_seen(&h, s2));
    CHECK(h.per_owner[1] == 1 && was_seen(&h, w1));
    rt_index_remove(&ix, s2);
    rt_index_remove(&ix, w1);
    CHECK(ix.count == 0 && run(&ix, "t.x").total == 0);

    CASE("an exact topic does not match its prefix or extension");
    rt_subscription_t *p = rt_index_add(&ix, rt_cstr("a"), O(0));
    rt_subscription_t *q = rt_index_add(&ix, rt_cstr("a.b"), O(1));
    h = run(&ix, "a.b");
    CHECK(h.per_owner[0] == 0 && h.per_owner[1] == 1);
    h = run(&ix, "a");
    CHECK(h.per_owner[0] == 1 && h.per_owner[1] == 0);
    h = run(&ix, "a.b.c");
    CHECK(h.total == 0);
    CHECK(run(&ix, "A").total == 0); /* case-sensitive */
    rt_index_remove(&ix, p);
    rt_index_remove(&ix, q);

    CASE("patterns sharing trie paths, removed in different orders");
    rt_subscription_t *x1 = rt_index_add(&ix, rt_cstr("a.*"), O(0));
    rt_subscription_t *x2 = rt_index_add(&ix, rt_cstr("a.*.c"), O(1));
    rt_subscription_t *x3 = rt_index_add(&ix, rt_cstr("a.>"), O(2));
    rt_subscription_t *x4 = rt_index_add(&ix, rt_cstr("a.b.*"), O(3));
    rt_subscription_t *x5 = rt_index_add(&ix, rt_cstr("*.b.>"), O(4));
    rt_subscription_t *x6 = rt_index_add(&ix, rt_cstr("*"), O(5));
    h = run(&ix, "a.b.c");
    CHECK(h.per_owner[0] == 0 && h.per_owner[1] == 1 && h.per_owner[2] == 1 && h.per_owner[3] == 1 &&
          h.per_owner[4] == 1 && h.per_owner[5] == 0);
    h = run(&ix, "a.b");
    CHECK(h.per_owner[0] == 1 && h.per_owner[1] == 0 && h.per_owner[2] == 1 && h.per_owner[3] == 0 &&
          h.per_owner[4] == 0 && h.per_owner[5] == 0);
    h = run(&ix, "a");
    CHECK(h.per_owner[5] == 1 && h.total == 1);
    rt_index_remove(&ix, x1); /* the shorter pattern first: a.*.c still there */
    h = run(&ix, "a.z.c");
    CHECK(h.per_owner[1] == 1 && h.per_owner[2] == 1 && h.total == 2);
    h = run(&ix, "a.z");
    CHECK(h.per_owner[0] == 0 && h.per_owner[2] == 1 && h.total == 1);
    rt_index_remove(&ix, x3);
    h = run(&ix, "a.z");
    CHECK(h.total == 0);
    h = run(&ix, "a.b.c");
    CHECK(h.per_owner[1] == 1 && h.per_owner[3] == 1 && h.per_owner[4] == 1 && h.total == 3);
    rt_index_remove(&ix, x2);
    rt_index_remove(&ix, x4);
    h = run(&ix, "a.b.c");
    CHECK(h.per_owner[4] == 1 && h.total == 1);
    h = run(&ix, "q.b.c.d");
    CHECK(h.per_owner[4] == 1 && h.total == 1);
    rt_index_remove(&ix, x5);
    rt_index_remove(&ix, x6);
    CHECK(ix.count == 0);
    CHECK(run(&ix, "a.b.c").total == 0 && run(&ix, "a").total == 0);

    CASE("the longest topic and pattern");
    char big[256];
    memset(big, 'z', 255);
    big[255] = '\0';
    big[1] = '.';
    rt_subscription_t *l1 = rt_index_add(&ix, rt_str(big, 255), O(6));
    CHECK(l1 && l1->pattern.len == 255 && memcmp(l1->pattern.base, big, 255) == 0);
    rt_subscription_t *l2 = rt_index_add(&ix, rt_cstr("z.*"), O(7));
    h = run(&ix, big);
    CHECK(h.per_owner[6] == 1 && h.per_owner[7] == 1 && h.total == 2);
    rt_index_remove(&ix, l1);
    rt_index_remove(&ix, l2);
    CHECK(ix.count == 0);
    rt_index_dispose(&ix);
}

/* ---- many subscriptions, checked against brute force over rt_topic_match ---- */

#define NSUBS 1000
#define NTOPICS 100

static char patterns[NSUBS][64];
static rt_subscription_t *subs[NSUBS];
static int sub_owner[NSUBS];

static void make_pattern(int k, char *out, size_t n)
{
    int t = k % NTOPICS, g = t % 7;
    switch (k % 8) {
    case 0: snprintf(out, n, "room%d.msg", t); break;
    case 1: snprintf(out, n, "room%d.*", t); break;
    case 2: snprintf(out, n, "room%d.>", t); break;
    case 3: snprintf(out, n, "*.msg"); break;
    case 4: snprintf(out, n, "grp%d.room%d.msg", g, t); break;
    case 5: snprintf(out, n, "grp%d.*.msg", g); break;
    case 6: snprintf(out, n, "grp%d.>", g); break;
    default: snprintf(out, n, "*.room%d.*", t); break;
    }
}

static int expected_for(const char *topic, int live_mask_odd_only, int per_owner[NOWNERS])
{
    int total = 0;
    memset(per_owner, 0, sizeof(int) * NOWNERS);
    for (int k = 0; k < NSUBS; k++) {
        if (live_mask_odd_only && k % 2 == 0)
            continue;
        if (rt_topic_match(rt_cstr(patterns[k]), rt_cstr(topic))) {
            per_owner[sub_owner[k]]++;
            total++;
        }
    }
    return total;
}

static int compare_all(rt_index_t *ix, int odd_only, int *nonzero_topics)
{
    int bad = 0;
    char topic[64];
    *nonzero_topics = 0;
    for (int t = 0; t < NTOPICS; t++) {
        for (int shape = 0; shape < 5; shape++) {
            switch (shape) {
            case 0: snprintf(topic, sizeof(topic), "room%d.msg", t); break;
            case 1: snprintf(topic, sizeof(topic), "room%d.other", t); break;
            case 2: snprintf(topic, sizeof(topic), "room%d.a.b", t); break;
            case 3: snprintf(topic, sizeof(topic), "grp%d.room%d.msg", t % 7, t); break;
            default: snprintf(topic, sizeof(topic), "room%d", t); break;
            }
            int exp[NOWNERS];
            int total = expected_for(topic, odd_only, exp);
            hits_t h = run(ix, topic);
            if (h.total != total || h.mismatched || h.foreign || memcmp(exp, h.per_owner, sizeof(exp)) != 0) {
                if (bad < 5)
                    printf("  %s: index %d, expected %d\n", topic, h.total, total);
                bad++;
            }
            if (total)
                (*nonzero_topics)++;
        }
    }
    return bad;
}

static void test_many(void)
{
    rt_index_t ix;
    rt_index_init(&ix);

    CASE("1,000 subscriptions over 100 topics");
    for (int k = 0; k < NSUBS; k++) {
        make_pattern(k, patterns[k], sizeof(patterns[k]));
        sub_owner[k] = k % NOWNERS;
        subs[k] = rt_index_add(&ix, rt_cstr(patterns[k]), O(sub_owner[k]));
    }
    CHECK(ix.count == NSUBS);

    /* room5.msg: "*.msg" (k%8==3, 125 of them) plus, among k = 5, 105, ..., 905, those whose
     * shape is room5.msg / room5.* / room5.> (k%8 in 0,1,2): k%8 alternates 5, 1, 5, 1, ... so
     * 105, 305, 505, 705, 905 are room5.* -> 5 more */
    int exp[NOWNERS];
    int total = expected_for("room5.msg", 0, exp);
    hits_t h = run(&ix, "room5.msg");
    CHECK(h.total == total);
    CHECK(total == 130);
    /* "*.msg" is k%8==3: 125 subscriptions, each matching any X.msg */
    h = run(&ix, "nosuchroom.msg");
    CHECK(h.total == 125);
    h = run(&ix, "nosuchroom.x");
    CHECK(h.total == 0);
    /* "grp3.>": k%8==6 and (k%100)%7==3 */
    int grp3 = 0;
    for (int k = 6; k < NSUBS; k += 8)
        grp3 += (k % NTOPICS) % 7 == 3;
    h = run(&ix, "grp3.zzz");
    CHECK(h.total == grp3 && grp3 > 0);

    int nonzero = 0;
    CHECK(compare_all(&ix, 0, &nonzero) == 0);
    CHECK(nonzero > 200); /* the comparison is not vacuous */

    CASE("remove half, match again");
    for (int k = 0; k < NSUBS; k += 2)
        rt_index_remove(&ix, subs[k]);
    CHECK(ix.count == NSUBS / 2);
    CHECK(compare_all(&ix, 1, &nonzero) == 0);
    h = run(&ix, "nosuchroom.msg");
    CHECK(h.total == 125); /* k%8==3 are all odd */

    CASE("remove the rest: empty, and matching still works");
    for (int k = 1; k < NSUBS; k += 2)
        rt_index_remove(&ix, subs[k]);
    CHECK(ix.count == 0);
    int any = 0;
    char topic[64];
    for (int t = 0; t < NTOPICS; t++) {
        snprintf(topic, sizeof(topic), "room%d.msg", t);
        any += run(&ix, topic).total;
        snprintf(topic, sizeof(topic), "grp%d.room%d.msg", t % 7, t);
        any += run(&ix, topic).total;
    }
    CHECK(any == 0);

    CASE("re-adding after full removal");
    rt_subscription_t *r1 = rt_index_add(&ix, rt_cstr("room1.*"), O(0));
    rt_subscription_t *r2 = rt_index_add(&ix, rt_cstr("room1.msg"), O(1));
    h = run(&ix, "room1.msg");
    CHECK(h.total == 2 && h.per_owner[0] == 1 && h.per_owner[1] == 1);
    rt_index_remove(&ix, r1);
    rt_index_remove(&ix, r2);
    CHECK(ix.count == 0);
    rt_index_dispose(&ix);
}

/* Each subscription holds its own copy of its pattern, sized to it (one per subscriber and topic: a fixed 256-byte
 * buffer was most of an idle subscriber's cost); ASan sees any byte past the copy. */
static void test_pattern_storage(void)
{
    rt_index_t ix;
    rt_index_init(&ix);
    char exact[RT_TOPIC_MAX + 1], wild[RT_TOPIC_MAX + 1];
    memset(exact, 'a', RT_TOPIC_MAX);
    exact[RT_TOPIC_MAX] = 0;
    exact[RT_TOPIC_MAX - 2] = '.'; /* aaa…a.a, and aaa…a.> matches it */
    memcpy(wild, exact, RT_TOPIC_MAX + 1);
    wild[RT_TOPIC_MAX - 1] = '>';

    CASE("a pattern of the longest length is kept whole, exact and wildcard");
    rt_subscription_t *e = rt_index_add(&ix, rt_str(exact, RT_TOPIC_MAX), O(0));
    rt_subscription_t *w = rt_index_add(&ix, rt_str(wild, RT_TOPIC_MAX), O(1));
    rt_subscription_t *one = rt_index_add(&ix, rt_cstr("x"), O(2));
    CHECK(e->pattern.len == RT_TOPIC_MAX && memcmp(e->pattern.base, exact, RT_TOPIC_MAX) == 0);
    CHECK(w->pattern.len == RT_TOPIC_MAX && memcmp(w->pattern.base, wild, RT_TOPIC_MAX) == 0);
    CHECK(one->pattern.len == 1 && one->pattern.base[0] == 'x');

    CASE("the pattern is a copy: the caller's buffer may change");
    exact[0] = exact[RT_TOPIC_MAX - 1] = 'b';
    CHECK(e->pattern.base[0] == 'a' && e->pattern.base[RT_TOPIC_MAX - 1] == 'a');
    exact[0] = exact[RT_TOPIC_MAX - 1] = 'a';
    hits_t h = run(&ix, exact);
    CHECK(h.total == 2 && h.per_owner[0] == 1 && h.per_owner[1] == 1 && h.mismatched == 0);

    CASE("a short pattern takes a small allocation");
    CHECK(malloc_usable_size(one) < sizeof(*one) + 64);

    rt_index_remove(&ix, e);
    rt_index_remove(&ix, w);
    rt_index_remove(&ix, one);
    CHECK(ix.count == 0);
    rt_index_dispose(&ix);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a sanitizer abort */
    test_basic();
    test_duplicates_and_shapes();
    test_many();
    test_pattern_storage();
    return UNIT_DONE();
}
