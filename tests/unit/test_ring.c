/* Unit tests for the memory bus (broker/bus.h): ids, retention, replay/resume, gaps, idempotency.
 * rt_nworkers is 0 here, so publishing only stores history; nothing is delivered. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "config.h"
#include "unit.h"

static rt_str_t S(const char *s) { return rt_cstr(s); }

typedef struct {
    int called, err;
    char id[RT_ID_MAX + 1];
} pubres_t;

static void on_pub(void *ctx, int err, rt_str_t id)
{
    pubres_t *r = ctx;
    r->called++;
    r->err = err;
    size_t n = id.len > RT_ID_MAX ? RT_ID_MAX : id.len;
    memcpy(r->id, id.base, n);
    r->id[n] = '\0';
}

typedef struct {
    char id[RT_ID_MAX + 1];
    uint64_t seq;
    int ok; /* callback ran once with RT_OK and a parsable id */
} pub_t;

static pub_t publish(rt_bus_t *bus, const char *topic, const char *data, const char *idem)
{
    pub_t p;
    memset(&p, 0, sizeof(p));
    pubres_t r;
    memset(&r, 0, sizeof(r));
    rt_msg_t *m = rt_msg_new(S(topic), S(""), S("text/plain"), S(data));
    bus->ops->publish(bus, m, idem ? S(idem) : rt_str("", 0), on_pub, &r);
    rt_id_t id;
    if (r.called == 1 && r.err == RT_OK && rt_id_parse(S(r.id), &id) == RT_OK &&
        rt_str_eq(id.epoch, bus->ops->epoch(bus))) {
        p.ok = 1;
        p.seq = id.seq;
    }
    snprintf(p.id, sizeof(p.id), "%s", r.id);
    return p;
}

/* Replays patterns (comma-free list, NULL-terminated) after since (NULL: no since). */
static rt_replay_t replay(rt_bus_t *bus, const char *const *patterns, const char *since, size_t max, int *rc)
{
    static rt_str_t pats[16];
    size_t n = 0;
    while (patterns[n] && n < 16) {
        pats[n] = S(patterns[n]);
        n++;
    }
    rt_replay_t r;
    memset(&r, 0, sizeof(r));
    r.patterns = pats;
    r.npatterns = n;
    r.max = max;
    if (since) {
        r.has_since = 1;
        if (rt_id_parse(S(since), &r.since) != RT_OK) {
            printf("  bad since %s\n", since);
            r.has_since = 0;
        }
    }
    r.gap = -1, r.truncated = -1; /* the bus must set them */
    *rc = bus->ops->replay(bus, &r, NULL, NULL); /* the memory bus answers at once */
    return r;
}
#define P(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Whether r holds exactly these payloads in this order, and seqs strictly increase. */
static int has_data(const rt_replay_t *r, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    int ok = r->count == n;
    for (size_t i = 0; ok && i < n; i++) {
        if (!rt_str_eqc(r->msgs[i]->data, want[i]))
            ok = 0;
        if (i && r->msgs[i - 1]->seq >= r->msgs[i]->seq)
            ok = 0;
    }
    if (!ok) {
        printf("  replay gave %zu:", r->count);
        for (size_t i = 0; i < r->count; i++)
            printf(" %.*s(%llu)", (int)r->msgs[i]->data.len, r->msgs[i]->data.base, (unsigned long long)r->msgs[i]->seq);
        printf("\n");
    }
    return ok;
}

static int write_config(char *path, size_t pathlen, const char *yaml)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, pathlen, "%s/rtb_test_ring_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t n = strlen(yaml);
    int ok = write(fd, yaml, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

static int load_config(const char *yaml)
{
    char path[256], err[512] = "";
    rt_config_reset();
    if (write_config(path, sizeof(path), yaml) != 0)
        return -1;
    int rc = rt_config_load(path, err, sizeof(err));
    unlink(path);
    if (rc != 0)
        printf("  config: %s\n", err);
    return rc;
}

/* The memory bus has no destructor: keep every bus reachable so that a leak checker stays quiet. */
static rt_bus_t *buses[8];
static size_t nbuses;
static rt_bus_t *new_bus(void)
{
    rt_bus_t *b = rt_bus_memory_new();
    if (nbuses < sizeof(buses) / sizeof(*buses))
        buses[nbuses++] = b;
    return b;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void test_memory_bus(void)
{
    char err[256] = "";
    int rc;
    rt_replay_t r;

    CASE("config for the bus");
    CHECK(load_config("history: {max_messages: 5, max_age: 1h}\n") == 0);
    CHECK(rt_cfg_int("history.max_messages") == 5);
    CHECK(rt_cfg_int("history.max_age") == 3600000);

    CASE("start");
    rt_bus_t *bus = new_bus();
    CHECK(bus != NULL && bus->ops != NULL);
    CHECK(strcmp(bus->ops->name, "memory") == 0);
    CHECK(bus->ops->start(bus, err, sizeof(err)) == 0);
    CHECK(bus->ops->ready(bus));
    rt_str_t epoch = bus->ops->epoch(bus);
    char epoch1[RT_EPOCH_MAX + 1] = "";
    CHECK(epoch.len >= 1 && epoch.len <= RT_EPOCH_MAX);
    memcpy(epoch1, epoch.base, epoch.len > RT_EPOCH_MAX ? RT_EPOCH_MAX : epoch.len);
    char probe[RT_ID_MAX + 1];
    rt_id_t pid;
    size_t pn = rt_id_format(probe, epoch, 1);
    CHECK(rt_id_parse(rt_str(probe, pn), &pid) == RT_OK); /* the epoch is a valid id epoch */

    CASE("publish assigns increasing ids in this bus's epoch");
    pub_t a[8];
    char payload[16];
    int all_ok = 1, increasing = 1;
    for (int i = 0; i < 8; i++) {
        snprintf(payload, sizeof(payload), "m%d", i + 1);
        a[i] = publish(bus, "chat.a", payload, NULL);
        all_ok &= a[i].ok;
        if (i && a[i].seq <= a[i - 1].seq)
            increasing = 0;
    }
    CHECK(all_ok);
    CHECK(increasing);
    CHECK(strcmp(a[0].id, a[1].id) != 0);

    CASE("retention: only the last max_messages are kept; resume from an evicted id reports a gap");
    r = replay(bus, P("chat.a"), a[0].id, 0, &rc);
    CHECK(rc == RT_OK);
    CHECK(has_data(&r, P("m4", "m5", "m6", "m7", "m8")));
    CHECK(r.gap == 1);
    CHECK(r.truncated == 0);
    CHECK(r.head == a[7].seq);
    CHECK(r.count == 5 && r.msgs[0]->seq == a[3].seq && r.msgs[4]->seq == a[7].seq);
    CHECK(r.count == 5 && rt_str_eqc(r.msgs[0]->id, a[3].id) && rt_str_eqc(r.msgs[0]->topic, "chat.a"));
    rt_replay_release(&r);
    CHECK(r.count == 0 && r.msgs == NULL);

    CASE("resume from the last id: nothing, no gap");
    r = replay(bus, P("chat.a"), a[7].id, 0, &rc);
    CHECK(rc == RT_OK && r.count == 0);
    CHECK(r.gap == 0);
    CHECK(r.truncated == 0);
    CHECK(r.head == a[7].seq);
    rt_replay_release(&r);

    CASE("resume from inside the retained window: the rest, no gap");
    r = replay(bus, P("chat.a"), a[4].id, 0, &rc);
    CHECK(has_data(&r, P("m6", "m7", "m8")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("chat.a"), a[2].id, 0, &rc); /* m3 was evicted but everything after it is here */
    CHECK(has_data(&r, P("m4", "m5", "m6", "m7", "m8")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("chat.a"), a[1].id, 0, &rc); /* m3 is missing after m2 */
    CHECK(has_data(&r, P("m4", "m5", "m6", "m7", "m8")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);

    CASE("wildcard replay merges topics in SEQ order");
    pub_t w[7];
    w[0] = publish(bus, "room.b", "r1", NULL);
    w[1] = publish(bus, "room.c", "r2", NULL);
    w[2] = publish(bus, "other.x", "o1", NULL);
    w[3] = publish(bus, "room.b", "r3", NULL);
    w[4] = publish(bus, "room.c", "r4", NULL);
    w[5] = publish(bus, "room.b.deep", "r5", NULL);
    w[6] = publish(bus, "room.d", "r6", NULL);
    CHECK(w[0].ok && w[1].ok && w[2].ok && w[3].ok && w[4].ok && w[5].ok && w[6].ok);
    CHECK(w[0].seq > a[7].seq && w[6].seq > w[5].seq);
    uint64_t last = w[6].seq;
    r = replay(bus, P("room.*"), a[7].id, 0, &rc);
    CHECK(rc == RT_OK);
    CHECK(has_data(&r, P("r1", "r2", "r3", "r4", "r6")));
    CHECK(r.gap == 0 && r.truncated == 0 && r.head == last);
    rt_replay_release(&r);
    r = replay(bus, P("room.>"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("r1", "r2", "r3", "r4", "r5", "r6")));
    rt_replay_release(&r);
    r = replay(bus, P("room.c", "room.b"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("r1", "r2", "r3", "r4")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("room.>", "room.b", "room.*"), a[7].id, 0, &rc); /* overlapping: no duplicates */
    CHECK(has_data(&r, P("r1", "r2", "r3", "r4", "r5", "r6")));
    rt_replay_release(&r);
    r = replay(bus, P("room.b", "room.b"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("r1", "r3")));
    rt_replay_release(&r);
    r = replay(bus, P("*.b", "*.x"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("r1", "o1", "r3")));
    rt_replay_release(&r);
    r = replay(bus, P("room.*"), w[1].id, 0, &rc); /* one cursor for the whole pattern */
    CHECK(has_data(&r, P("r3", "r4", "r6")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P(">"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("r1", "r2", "o1", "r3", "r4", "r5", "r6")));
    rt_replay_release(&r);
    r = replay(bus, P("chat.*", "room.c"), a[5].id, 0, &rc); /* retention is per topic */
    CHECK(has_data(&r, P("m7", "m8", "r2", "r4")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("chat.*", "room.c"), a[0].id, 0, &rc); /* chat.a lost m2, m3 */
    CHECK(has_data(&r, P("m4", "m5", "m6", "m7", "m8", "r2", "r4")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);

    CASE("evictions on one topic do not make a gap on others");
    r = replay(bus, P("room.*"), a[0].id, 0, &rc);
    CHECK(has_data(&r, P("r1", "r2", "r3", "r4", "r6")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);

    CASE("an id from another epoch: gap, then everything retained");
    r = replay(bus, P("chat.a"), "otherepoch:3", 0, &rc);
    CHECK(rc == RT_OK);
    CHECK(has_data(&r, P("m4", "m5", "m6", "m7", "m8")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);
    r = replay(bus, P("room.*"), "zz:999999", 0, &rc);
    CHECK(has_data(&r, P("r1", "r2", "r3", "r4", "r6")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);
    r = replay(bus, P("room.c"), "other-epoch:0", 0, &rc);
    CHECK(has_data(&r, P("r2", "r4")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);

    CASE("an id of this epoch beyond the last SEQ: gap, then everything retained");
    char future[RT_ID_MAX + 1];
    rt_id_format(future, rt_cstr(epoch1), last + 1000);
    r = replay(bus, P("room.c"), future, 0, &rc);
    CHECK(has_data(&r, P("r2", "r4")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);

    CASE("an id of this epoch before everything (SEQ 0) on a complete topic: no gap");
    char zero[RT_ID_MAX + 1];
    rt_id_format(zero, rt_cstr(epoch1), 0);
    r = replay(bus, P("room.c"), zero, 0, &rc);
    CHECK(has_data(&r, P("r2", "r4")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("chat.a"), zero, 0, &rc);
    CHECK(has_data(&r, P("m4", "m5", "m6", "m7", "m8")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);

    CASE("max truncates, and head is the last returned SEQ");
    r = replay(bus, P("chat.a"), a[4].id, 2, &rc);
    CHECK(has_data(&r, P("m6", "m7")));
    CHECK(r.truncated == 1);
    CHECK(r.head == a[6].seq);
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("chat.a"), a[4].id, 3, &rc); /* exactly max: not truncated */
    CHECK(has_data(&r, P("m6", "m7", "m8")));
    CHECK(r.truncated == 0);
    CHECK(r.head == last);
    rt_replay_release(&r);
    r = replay(bus, P("chat.a"), a[0].id, 1, &rc);
    CHECK(has_data(&r, P("m4")));
    CHECK(r.truncated == 1 && r.gap == 1 && r.head == a[3].seq);
    rt_replay_release(&r);
    r = replay(bus, P("room.*"), a[7].id, 3, &rc);
    CHECK(has_data(&r, P("r1", "r2", "r3")));
    CHECK(r.truncated == 1 && r.head == w[3].seq);
    rt_replay_release(&r);
    r = replay(bus, P("room.*"), w[3].id, 3, &rc); /* resume from the returned head gets the rest */
    CHECK(has_data(&r, P("r4", "r6")));
    CHECK(r.truncated == 0 && r.gap == 0);
    rt_replay_release(&r);

    CASE("no since: no replay, head is the last SEQ");
    r = replay(bus, P("chat.a"), NULL, 0, &rc);
    CHECK(rc == RT_OK && r.count == 0);
    CHECK(r.gap == 0 && r.truncated == 0);
    CHECK(r.head == last);
    rt_replay_release(&r);
    r = replay(bus, P("room.*", "nothing.here"), NULL, 2, &rc);
    CHECK(r.count == 0 && r.head == last && r.gap == 0);
    rt_replay_release(&r);

    CASE("a topic with no history: nothing, no gap");
    r = replay(bus, P("nothing.here"), a[7].id, 0, &rc);
    CHECK(rc == RT_OK && r.count == 0 && r.gap == 0 && r.head == last);
    rt_replay_release(&r);
    r = replay(bus, P("nothing.*"), a[7].id, 0, &rc);
    CHECK(rc == RT_OK && r.count == 0 && r.gap == 0);
    rt_replay_release(&r);

    CASE("Idempotency-Key: a retry returns the first id and adds nothing");
    pub_t i1 = publish(bus, "idem.t", "first", "key-1");
    CHECK(i1.ok && i1.seq > last);
    r = replay(bus, P("idem.t"), NULL, 0, &rc);
    uint64_t head_before = r.head;
    rt_replay_release(&r);
    pub_t i2 = publish(bus, "idem.t", "second", "key-1");
    CHECK(i2.ok);
    CHECK(strcmp(i2.id, i1.id) == 0);
    r = replay(bus, P("idem.t"), NULL, 0, &rc);
    CHECK(r.head == head_before); /* no SEQ consumed */
    rt_replay_release(&r);
    r = replay(bus, P("idem.t"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("first")));
    rt_replay_release(&r);
    pub_t i3 = publish(bus, "idem.other", "third", "key-1"); /* same key, other topic */
    CHECK(i3.ok && strcmp(i3.id, i1.id) != 0 && i3.seq > i1.seq);
    pub_t i4 = publish(bus, "idem.t", "fourth", "key-2"); /* other key */
    CHECK(i4.ok && strcmp(i4.id, i1.id) != 0 && i4.seq > i3.seq);
    pub_t i5 = publish(bus, "idem.t", "fifth", NULL); /* no key: always published */
    pub_t i6 = publish(bus, "idem.t", "fifth", NULL);
    CHECK(i5.ok && i6.ok && i6.seq > i5.seq);
    pub_t i7 = publish(bus, "idem.t", "again", "key-1"); /* still the first id */
    CHECK(strcmp(i7.id, i1.id) == 0);
    r = replay(bus, P("idem.t"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("first", "fourth", "fifth", "fifth")));
    rt_replay_release(&r);
    r = replay(bus, P("idem.other"), a[7].id, 0, &rc);
    CHECK(has_data(&r, P("third")));
    rt_replay_release(&r);

    CASE("metrics report the last SEQ");
    rt_buf_t mb = {0};
    bus->ops->metrics(bus, &mb);
    char want[64];
    snprintf(want, sizeof(want), "rtbroker_bus_seq %llu\n", (unsigned long long)i6.seq);
    char *z = rt_strndup(rt_str(mb.base, mb.len));
    CHECK(strstr(z, want) != NULL);
    free(z);
    rt_buf_free(&mb);
    bus->ops->stop(bus);
}

static void test_max_age(void)
{
    char err[256] = "";
    int rc;
    rt_replay_t r;

    CASE("max_age: messages older than history.max_age are dropped, with a gap");
    CHECK(load_config("history:\n  max_messages: 100\n  max_age: 1s\npublish:\n  dedup_window: 1s\n") == 0);
    CHECK(rt_cfg_int("history.max_age") == 1000);
    CHECK(rt_cfg_int("publish.dedup_window") == 1000);
    rt_bus_t *bus = new_bus();
    CHECK(bus->ops->start(bus, err, sizeof(err)) == 0);
    char ep[RT_ID_MAX + 1];
    rt_id_format(ep, bus->ops->epoch(bus), 0);
    pub_t m1 = publish(bus, "age.a", "old", NULL);
    CHECK(m1.ok);
    pub_t k1 = publish(bus, "dk.k", "keyed", "retry-me");
    pub_t k2 = publish(bus, "dk.k", "keyed", "retry-me");
    CHECK(k1.ok && k2.ok && strcmp(k1.id, k2.id) == 0);
    r = replay(bus, P("age.a"), ep, 0, &rc);
    CHECK(has_data(&r, P("old")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    sleep_ms(1150);
    r = replay(bus, P("age.a"), ep, 0, &rc);
    CHECK(rc == RT_OK && r.count == 0);
    CHECK(r.gap == 1);
    rt_replay_release(&r);
    r = replay(bus, P("age.a"), m1.id, 0, &rc);
    CHECK(r.count == 0 && r.gap == 0);
    rt_replay_release(&r);

    CASE("dedup_window: after the window the same key publishes anew");
    pub_t k3 = publish(bus, "dk.k", "keyed", "retry-me");
    CHECK(k3.ok && strcmp(k3.id, k1.id) != 0 && k3.seq > k1.seq);
    pub_t k4 = publish(bus, "dk.k", "keyed", "retry-me");
    CHECK(strcmp(k4.id, k3.id) == 0);

    CASE("max_age: after the tick drops the empty topic, the gap is still reported");
    bus->ops->tick(bus);
    r = replay(bus, P("age.a"), ep, 0, &rc);
    CHECK(rc == RT_OK && r.count == 0);
    CHECK(r.gap == 1);
    rt_replay_release(&r);
    r = replay(bus, P("age.*"), ep, 0, &rc);
    CHECK(r.count == 0 && r.gap == 1);
    rt_replay_release(&r);
    pub_t m2 = publish(bus, "age.a", "new", NULL);
    CHECK(m2.ok && m2.seq > m1.seq);
    r = replay(bus, P("age.a"), m1.id, 0, &rc);
    CHECK(has_data(&r, P("new")));
    CHECK(r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("age.a"), ep, 0, &rc);
    CHECK(has_data(&r, P("new")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);
    bus->ops->stop(bus);
}

static void test_epochs(void)
{
    char err[256] = "";
    CASE("a new memory bus has a new epoch");
    CHECK(load_config("history: {max_messages: 5}\n") == 0);
    rt_bus_t *b1 = new_bus(), *b2 = new_bus();
    CHECK(b1->ops->start(b1, err, sizeof(err)) == 0);
    CHECK(b2->ops->start(b2, err, sizeof(err)) == 0);
    CHECK(!rt_str_eq(b1->ops->epoch(b1), b2->ops->epoch(b2)));
    pub_t x = publish(b1, "e.t", "x", NULL);
    CHECK(x.ok);
    int rc;
    rt_replay_t r = replay(b2, P("e.t"), x.id, 0, &rc); /* b1's id on b2 ("restarted"): gap */
    CHECK(rc == RT_OK && r.count == 0 && r.gap == 1);
    rt_replay_release(&r);
    pub_t y = publish(b2, "e.t", "y", NULL);
    r = replay(b2, P("e.t"), x.id, 0, &rc);
    CHECK(has_data(&r, P("y")));
    CHECK(r.gap == 1);
    rt_replay_release(&r);
    CHECK(y.ok);
    b1->ops->stop(b1);
    b2->ops->stop(b2);
    rt_config_reset();
}

static void test_ring_wrap(void)
{
    char err[256] = "";
    int rc;
    CASE("default retention (100): many publishes wrap the ring, order kept");
    rt_config_reset();
    CHECK(rt_config_load(NULL, err, sizeof(err)) == 0);
    CHECK(rt_cfg_int("history.max_messages") == 100);
    rt_bus_t *bus = new_bus();
    CHECK(bus->ops->start(bus, err, sizeof(err)) == 0);
    char ep[RT_ID_MAX + 1], data[32];
    rt_id_format(ep, bus->ops->epoch(bus), 0);
    static const char *topics[] = {"ring.a", "ring.b", "ring.c"};
    pub_t p[750];
    int ok = 1;
    for (int i = 0; i < 750; i++) {
        snprintf(data, sizeof(data), "%d", i);
        p[i] = publish(bus, topics[i % 3], data, NULL);
        ok &= p[i].ok && (i == 0 || p[i].seq > p[i - 1].seq);
    }
    CHECK(ok);
    rt_replay_t r = replay(bus, P("ring.b"), ep, 0, &rc);
    int good = rc == RT_OK && r.count == 100 && r.gap == 1;
    for (size_t k = 0; good && k < r.count; k++) {
        int i = 450 + (int)k * 3 + 1; /* the last 100 of ring.b: 451, 454, ..., 748 */
        snprintf(data, sizeof(data), "%d", i);
        good = rt_str_eqc(r.msgs[k]->data, data) && r.msgs[k]->seq == p[i].seq;
    }
    CHECK(good);
    rt_replay_release(&r);
    r = replay(bus, P("ring.*"), ep, 0, &rc);
    good = r.count == 300 && r.gap == 1;
    for (size_t k = 0; good && k < r.count; k++) {
        snprintf(data, sizeof(data), "%d", 450 + (int)k);
        good = rt_str_eqc(r.msgs[k]->data, data);
    }
    CHECK(good);
    CHECK(r.head == p[749].seq);
    rt_replay_release(&r);
    r = replay(bus, P("ring.*"), p[449].id, 0, &rc); /* exactly the oldest retained boundary */
    CHECK(r.count == 300 && r.gap == 0);
    rt_replay_release(&r);
    r = replay(bus, P("ring.*"), p[448].id, 0, &rc);
    CHECK(r.count == 300 && r.gap == 1);
    rt_replay_release(&r);
    r = replay(bus, P("ring.*"), p[700].id, 10, &rc);
    good = r.count == 10 && r.truncated == 1 && r.head == p[710].seq;
    for (size_t k = 0; good && k < r.count; k++)
        good = r.msgs[k]->seq == p[701 + k].seq;
    CHECK(good);
    rt_replay_release(&r);
    bus->ops->stop(bus);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a sanitizer abort */
    test_memory_bus();
    test_epochs();
    test_ring_wrap();
    test_max_age();
    return UNIT_DONE();
}
