/* Unit tests for broker/history.c: limits applied per topic before merging (paging through a wildcard gives
 * every message once, in order), the whole-history caps (max_bytes, max_topics) and the release of encodings
 * that only the history still holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "unit.h"

#define EPOCH RT_STRLIT("e1")

/* Histories have no destructor: keep them reachable so that a leak checker stays quiet. */
static rt_history_t *hists[3];
static size_t nhists;
static rt_history_t *new_history(void) { return hists[nhists++] = rt_history_new(); }

static rt_msg_t *add(rt_history_t *h, const char *topic, uint64_t seq, const char *data)
{
    rt_msg_t *m = rt_msg_new(rt_cstr(topic), rt_str(NULL, 0), rt_str(NULL, 0), rt_cstr(data));
    rt_msg_set_id(m, EPOCH, seq);
    rt_history_add(h, m);
    return m; /* the caller's reference */
}

/* A replay of patterns since SEQ `since` (or, when before is non-zero, the `max` before SEQ `before`). */
static rt_replay_t replay(rt_history_t *h, const char *const *patterns, uint64_t since, uint64_t before, size_t max)
{
    static rt_str_t pats[8];
    size_t n = 0;
    while (patterns[n])
        pats[n] = rt_cstr(patterns[n]), n++;
    rt_replay_t r;
    memset(&r, 0, sizeof(r));
    r.patterns = pats, r.npatterns = n, r.max = max;
    if (before) {
        r.has_before = 1, r.before = before;
    } else {
        r.has_since = 1;
        r.since.epoch = EPOCH, r.since.seq = since;
    }
    rt_history_replay(h, EPOCH, 0, &r);
    return r;
}
#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

static int metric_is(rt_history_t *h, const char *line)
{
    rt_buf_t b = {0};
    rt_history_metrics(h, &b);
    rt_buf_append(&b, "", 1);
    int ok = strstr(b.base, line) != NULL;
    if (!ok)
        printf("  no \"%s\" in:\n%s", line, b.base);
    rt_buf_free(&b);
    return ok;
}

static void test_limits_per_topic(void)
{
    enum { TOPICS = 300, PER = 20, N = TOPICS * PER };
    rt_history_t *h = new_history();
    rt_history_configure(h, PER, 3600 * 1000, SIZE_MAX, SIZE_MAX);
    char topic[32];
    for (uint64_t seq = 1; seq <= N; seq++) {
        snprintf(topic, sizeof(topic), "w.t%03d", (int)(seq * 7 % TOPICS)); /* interleaved */
        rt_msg_unref(add(h, topic, seq, "x"));
    }

    CASE("wildcard, limit 1, newest");
    rt_replay_t r = replay(h, P("w.>"), 0, UINT64_MAX, 1);
    CHECK(r.count == 1 && r.msgs[0]->seq == N && r.truncated == 1 && r.gap == 0);
    rt_replay_release(&r);

    CASE("wildcard, limit 1, oldest after a resume point");
    r = replay(h, P("w.>"), 1234, 0, 1);
    CHECK(r.count == 1 && r.msgs[0]->seq == 1235 && r.truncated == 1 && r.head == 1235 && r.gap == 0);
    rt_replay_release(&r);

    CASE("one topic with more than the limit: the cursor stops at the last one returned");
    r = replay(h, P("w.t007"), 0, 0, 3);
    CHECK(r.count == 3 && r.truncated == 1 && r.head == r.msgs[2]->seq && r.msgs[0]->seq == 1);
    rt_replay_release(&r);

    CASE("paging forward through a wildcard, duplicated and exact patterns: every message once, in order");
    uint64_t cursor = 0, next = 1;
    int pages = 0, ok = 1;
    for (;;) {
        r = replay(h, P("w.*", "w.t001", "w.>", "w.t001"), cursor, 0, 7);
        for (size_t i = 0; i < r.count; i++)
            ok &= r.msgs[i]->seq == next++;
        int more = r.truncated;
        cursor = r.head;
        rt_replay_release(&r);
        pages++;
        if (!more || pages > N)
            break;
    }
    CHECK(ok && next == N + 1 && cursor == N);
    CHECK(pages == (N + 6) / 7);

    CASE("paging back through a wildcard: every message once");
    uint64_t before = UINT64_MAX, expect = N;
    ok = 1;
    for (pages = 0; pages <= N; pages++) {
        r = replay(h, P("w.>"), 0, before, 11);
        for (size_t i = r.count; i-- > 0;)
            ok &= r.msgs[i]->seq == expect--;
        int more = r.truncated;
        if (r.count)
            before = r.msgs[0]->seq;
        rt_replay_release(&r);
        if (!more)
            break;
    }
    CHECK(ok && expect == 0);

    CASE("no limit: everything after the resume point");
    r = replay(h, P("w.>"), N - 500, 0, 0);
    CHECK(r.count == 500 && r.truncated == 0 && r.head == N && r.msgs[499]->seq == N);
    rt_replay_release(&r);
    rt_history_clear(h);
}

static void test_caps(void)
{
    rt_history_t *h = new_history();
    rt_history_configure(h, 100, 3600 * 1000, SIZE_MAX, 3);

    CASE("max_topics: the least recently published topic goes, with a gap for a resume from before it");
    rt_msg_unref(add(h, "c.a", 1, "a1"));
    rt_msg_unref(add(h, "c.b", 2, "b1"));
    rt_msg_unref(add(h, "c.c", 3, "c1"));
    rt_msg_unref(add(h, "c.a", 4, "a2")); /* c.b is now the least recent */
    rt_msg_unref(add(h, "c.d", 5, "d1"));
    rt_replay_t r = replay(h, P("c.b"), 1, 0, 0);
    CHECK(r.count == 0 && r.gap == 1);
    rt_replay_release(&r);
    r = replay(h, P("c.a"), 0, 0, 0);
    CHECK(r.count == 2);
    rt_replay_release(&r);
    CHECK(metric_is(h, "rtbroker_history_topics 3\n"));
    CHECK(metric_is(h, "rtbroker_history_topics_evicted_total 1\n"));
    CHECK(metric_is(h, "rtbroker_history_evicted_total{cause=\"max_topics\"} 1\n"));
    rt_history_clear(h);

    CASE("max_bytes: the oldest messages of the whole history go first; the newest stays whatever its size");
    size_t one = sizeof(rt_msg_t) + 3 + 2; /* topic "c.x" + 2 bytes of data */
    rt_history_configure(h, 100, 3600 * 1000, 5 * one, SIZE_MAX);
    for (uint64_t seq = 1; seq <= 8; seq++)
        rt_msg_unref(add(h, seq % 2 ? "c.x" : "c.y", seq, "dd"));
    r = replay(h, P("c.*"), 0, 0, 0);
    CHECK(r.count == 5 && r.msgs[0]->seq == 4 && r.gap == 1);
    rt_replay_release(&r);
    CHECK(metric_is(h, "rtbroker_history_evicted_total{cause=\"max_bytes\"} 3\n"));
    char big[4096];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rt_msg_unref(add(h, "c.x", 9, big));
    r = replay(h, P("c.*"), 0, 0, 0);
    CHECK(r.count == 1 && r.msgs[0]->seq == 9);
    rt_replay_release(&r);
    rt_history_clear(h);
}

static void test_encodings_released(void)
{
    rt_history_t *h = new_history();
    rt_history_configure(h, 100, 3600 * 1000, SIZE_MAX, SIZE_MAX);
    size_t base = rt_msg_cached_bytes();

    CASE("the encodings of a message only the history holds are released");
    rt_msg_t *m = add(h, "e.t", 1, "\x01\x01\x01\x01");
    CHECK(rt_msg_envelope(m).len > 24);
    CHECK(rt_msg_cached_bytes() > base);
    rt_msg_t *other = rt_msg_ref(m); /* a second holder, e.g. a subscriber's queue */
    rt_msg_unref(m);
    rt_history_tick(h);
    CHECK(rt_msg_cached_bytes() > base); /* still wanted */
    rt_msg_unref(other);
    CHECK(rt_msg_cached_bytes() > base); /* released at the history's next turn */
    rt_history_tick(h);
    CHECK(rt_msg_cached_bytes() == base);
    rt_replay_t r = replay(h, P("e.t"), 0, 0, 0);
    CHECK(r.count == 1 && rt_msg_envelope(r.msgs[0]).len > 24); /* encoded again on demand */
    rt_replay_release(&r);
    rt_msg_unref(add(h, "e.t", 2, "y")); /* an add also releases them */
    CHECK(rt_msg_cached_bytes() == base);

    CASE("an evicted message takes its encodings with it");
    m = add(h, "e.u", 3, "z");
    rt_msg_envelope(m);
    rt_history_clear(h);
    CHECK(rt_msg_cached_bytes() > base);
    rt_msg_unref(m);
    CHECK(rt_msg_cached_bytes() == base);
}

int main(void)
{
    test_limits_per_topic();
    test_caps();
    test_encodings_released();
    return UNIT_DONE();
}
