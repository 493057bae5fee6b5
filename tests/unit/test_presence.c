/* Unit tests for presence (broker/presence.h): the cluster view, lingering, other nodes, and what is stored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "presence.h"
#include "unit.h"

#define S(x) rt_cstr(x)

static char snap[4096];
static const char *snapshot(const char *topic)
{
    rt_buf_t b = {0};
    rt_presence_snapshot(S(topic), &b);
    snprintf(snap, sizeof(snap), "%.*s", (int)b.len, b.base);
    rt_buf_free(&b);
    return snap;
}

static unsigned long metric(const char *name)
{
    rt_buf_t b = {0};
    rt_presence_metrics(&b);
    rt_buf_appendc(&b, "");
    rt_buf_append(&b, "", 1);
    const char *p = strstr(b.base, name);
    unsigned long v = p ? strtoul(p + strlen(name), NULL, 10) : 999999;
    rt_buf_free(&b);
    return v;
}

static char stored[4096];
static int nstored;
static void collect_cb(void *ctx, rt_str_t topic, rt_str_t value)
{
    (void)ctx;
    nstored++;
    size_t n = strlen(stored);
    snprintf(stored + n, sizeof(stored) - n, "%.*s=%.*s;", (int)topic.len, topic.base, (int)value.len, value.base);
}
static const char *collect(int all)
{
    stored[0] = '\0';
    nstored = 0;
    rt_presence_collect(all, collect_cb, NULL);
    return stored;
}

int main(void)
{
    char err[256];
    setenv("RTB_PRESENCE_POLL_GRACE", "200ms", 1);
    if (rt_config_load(NULL, err, sizeof(err)) != 0) {
        printf("FAIL %s: config: %s\n", __FILE__, err);
        return 1;
    }
    rt_config_freeze();
    CHECK(rt_presence_init(err, sizeof(err)) == 0);

    CASE("client ids");
    char id[RT_CLIENT_MAX + 1], id2[RT_CLIENT_MAX + 1];
    rt_presence_new_client(id);
    rt_presence_new_client(id2);
    CHECK(strncmp(id, rt_presence_node(), strlen(rt_presence_node())) == 0);
    CHECK(strcmp(id, id2) != 0);
    CHECK(rt_presence_client_ok(S(id)));
    CHECK(!rt_presence_client_ok(S("")));
    CHECK(!rt_presence_client_ok(S("a\"b")));
    CHECK(!rt_presence_client_ok(S("0123456789012345678901234567890123456789012345678")));

    CASE("client keys: given to one user, refused for another, forged or bare");
    char key[RT_CLIENT_KEY_MAX + 1];
    rt_str_t back = {NULL, 0};
    rt_presence_client_key(S(id), S("alice"), key);
    CHECK(strlen(key) == strlen(id) + 33 && key[strlen(id)] == '.');
    CHECK(rt_presence_client_check(S(key), S("alice"), &back) == RT_OK && rt_str_eqc(back, id));
    CHECK(rt_presence_client_check(S(key), S("bob"), &back) == RT_EID);
    CHECK(rt_presence_client_check(S(key), S(""), &back) == RT_EID);
    CHECK(rt_presence_client_check(S(id), S("alice"), &back) == RT_EID);
    key[strlen(key) - 1] = key[strlen(key) - 1] == '0' ? '1' : '0';
    CHECK(rt_presence_client_check(S(key), S("alice"), &back) == RT_EID);
    key[strlen(key) - 1] = '\0';
    CHECK(rt_presence_client_check(S(key), S("alice"), &back) == RT_EID);
    rt_presence_client_key(S(id2), S(""), key);
    CHECK(rt_presence_client_check(S(key), S(""), &back) == RT_OK && rt_str_eqc(back, id2));

    CASE("one user on two connections counts once; anonymous counted apart");
    rt_presence_join(S("room.a"), S("alice"), S("c1"), S("{\"name\":\"Alice\"}"), 0);
    rt_presence_join(S("room.a"), S("alice"), S("c2"), S("{\"name\":\"Alice\"}"), 0);
    rt_presence_join(S("room.a"), S(""), S("c3"), S(""), 0);
    CHECK(strcmp(snapshot("room.a"), "{\"topic\":\"room.a\",\"count\":2,\"users\":[{\"user\":\"alice\",\"clients\":2,"
                                     "\"info\":{\"name\":\"Alice\"}}],\"anonymous\":1}") == 0);
    CHECK(metric("\nrtbroker_presence_members ") == 3);
    CHECK(metric("{type=\"join\"} ") == 3);
    CHECK(strcmp(snapshot("room.none"), "{\"topic\":\"room.none\",\"count\":0,\"users\":[],\"anonymous\":0}") == 0);

    CASE("the same client twice is one member until both leave; a repeated leave is harmless");
    rt_presence_join(S("room.a"), S("alice"), S("c1"), S(""), 0);
    rt_presence_leave(S("room.a"), S("alice"), S("c1"));
    CHECK(strstr(snapshot("room.a"), "\"clients\":2") != NULL);
    rt_presence_leave(S("room.a"), S("alice"), S("c1"));
    CHECK(strstr(snapshot("room.a"), "\"clients\":1") != NULL);
    rt_presence_leave(S("room.a"), S("alice"), S("c1"));
    rt_presence_leave(S("room.a"), S("mallory"), S("c2")); /* another user's leave with alice's client id */
    CHECK(strstr(snapshot("room.a"), "\"clients\":1") != NULL);
    CHECK(metric("{type=\"leave\"} ") == 1);

    CASE("what this node stores: changed topics only, then all");
    const char *s = collect(0);
    CHECK(nstored == 1 && strstr(s, "room.a={\"v\":") == s);
    CHECK(strstr(s, "[\"c2\",\"alice\",{\"name\":\"Alice\"}]") != NULL && strstr(s, "[\"c3\",null,null]") != NULL);
    CHECK(strstr(s, "c1") == NULL);
    collect(0);
    CHECK(nstored == 0);
    collect(1);
    CHECK(nstored == 1);

    CASE("a long-poll member lingers for presence.poll_grace, and a new poll in time keeps it");
    rt_presence_join(S("room.b"), S("bob"), S("p1"), S(""), 1);
    rt_presence_leave(S("room.b"), S("bob"), S("p1"));
    rt_presence_tick();
    CHECK(strstr(snapshot("room.b"), "\"user\":\"bob\"") != NULL);
    rt_presence_join(S("room.b"), S("bob"), S("p1"), S(""), 1);
    usleep(300 * 1000);
    rt_presence_tick();
    CHECK(strstr(snapshot("room.b"), "\"user\":\"bob\"") != NULL);
    rt_presence_leave(S("room.b"), S("bob"), S("p1"));
    usleep(300 * 1000);
    rt_presence_tick();
    CHECK(strstr(snapshot("room.b"), "\"count\":0") != NULL);

    CASE("other nodes: versions, a client on two nodes counted once, and dead nodes");
    rt_presence_member_t m1[] = {{S("x1"), S("carol"), S("")}, {S("shared"), S("dave"), S("")}};
    rt_presence_member_t m2[] = {{S("shared"), S("dave"), S("")}};
    rt_presence_remote(S("nodeX"), S("room.c"), 5, 0, m1, 2);
    rt_presence_remote(S("nodeY"), S("room.c"), 9, 0, m2, 1);
    CHECK(strstr(snapshot("room.c"), "\"count\":2") != NULL);
    CHECK(strstr(snapshot("room.c"), "{\"user\":\"dave\",\"clients\":1") != NULL);
    rt_presence_remote(S("nodeX"), S("room.c"), 4, 0, NULL, 0); /* older: ignored */
    CHECK(strstr(snapshot("room.c"), "\"count\":2") != NULL);
    rt_presence_remote(S("nodeX"), S("room.c"), 6, 0, NULL, 0);
    CHECK(strstr(snapshot("room.c"), "\"count\":1") != NULL && strstr(snapshot("room.c"), "dave") != NULL);
    rt_presence_expire_nodes(60000);
    CHECK(strstr(snapshot("room.c"), "dave") != NULL);
    rt_presence_remote_seen(S("nodeY"), 0);
    usleep(50 * 1000);
    rt_presence_expire_nodes(20); /* nodeY silent for 50 ms > 20 ms: its members leave */
    CHECK(strstr(snapshot("room.c"), "\"count\":0") != NULL);
    rt_presence_member_t m3[] = {{S("z1"), S("erin"), S("")}};
    rt_presence_remote(S("nodeZ"), S("room.c"), 1, 90000, m3, 1); /* written 90 s ago */
    rt_presence_expire_nodes(30000);
    CHECK(strstr(snapshot("room.c"), "\"count\":0") != NULL);
    CHECK(strstr(snapshot("room.a"), "alice") != NULL); /* this node's members never expire that way */

    CASE("everyone leaves: nothing left behind");
    collect(0);
    rt_presence_leave(S("room.a"), S("alice"), S("c2"));
    rt_presence_leave(S("room.a"), S(""), S("c3"));
    CHECK(metric("\nrtbroker_presence_members ") == 0);
    collect(0);
    CHECK(nstored == 1 && strstr(stored, "room.a={\"v\":") != NULL && strstr(stored, "\"m\":[]}") != NULL);
    return UNIT_DONE();
}
