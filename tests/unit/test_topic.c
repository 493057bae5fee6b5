/* Unit tests for the topic grammar, wildcard matching, coverage and message ids (broker/topic.h, API.md "Topics"). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "topic.h"
#include "unit.h"

static rt_str_t S(const char *s) { return rt_cstr(s); }

/* rt_topic_check with is_pattern; returns the rc, *pat gets the flag (-1 when untouched). */
static int check(const char *t, int allow, int *pat)
{
    *pat = -1;
    return rt_topic_check(S(t), allow, pat);
}
static int valid_topic(const char *t) { return rt_topic_check(S(t), 0, NULL) == RT_OK; }
static int valid_pattern(const char *t) { return rt_topic_check(S(t), 1, NULL) == RT_OK; }
static int match(const char *p, const char *t) { return rt_topic_match(S(p), S(t)); }
static int covers(const char *g, const char *p) { return rt_topic_covers(S(g), S(p)); }

static int parse(const char *s, rt_id_t *id)
{
    memset(id, 0, sizeof(*id));
    return rt_id_parse(S(s), id);
}

static void test_check_valid(void)
{
    int pat;
    CASE("check: valid literal topics");
    CHECK(check("chat.room-1", 0, &pat) == RT_OK);
    CHECK(pat == 0);
    CHECK(check("a_b.C9", 0, &pat) == RT_OK);
    CHECK(pat == 0);
    CHECK(valid_topic("a"));
    CHECK(valid_topic("news.sports.live"));
    CHECK(valid_topic("A-Z_az-09"));
    CHECK(valid_topic("-._"));
    CHECK(valid_topic("x.y.z.w.v.u"));
    CHECK(valid_topic("Chat"));
    CASE("check: literal topics are valid when wildcards are allowed too, and are not patterns");
    CHECK(check("chat.room-1", 1, &pat) == RT_OK);
    CHECK(pat == 0);
    CHECK(check("a_b.C9", 1, &pat) == RT_OK);
    CHECK(pat == 0);
}

static void test_check_invalid(void)
{
    CASE("check: empty and misplaced dots");
    CHECK(rt_topic_check(rt_str("", 0), 0, NULL) == RT_ETOPIC);
    CHECK(rt_topic_check(rt_str(NULL, 0), 1, NULL) == RT_ETOPIC);
    CHECK(!valid_topic("."));
    CHECK(!valid_topic(".."));
    CHECK(!valid_topic(".a"));
    CHECK(!valid_topic("a."));
    CHECK(!valid_topic("a..b"));
    CHECK(!valid_pattern(".a"));
    CHECK(!valid_pattern("a."));
    CHECK(!valid_pattern("a..b"));
    CHECK(!valid_pattern("a.*."));
    CHECK(!valid_pattern(".>"));
    CHECK(rt_topic_check(S("a..b"), 0, NULL) == RT_ETOPIC);

    CASE("check: characters outside [A-Za-z0-9_-]");
    CHECK(!valid_topic("chat room"));
    CHECK(!valid_topic(" chat"));
    CHECK(!valid_topic("chat "));
    CHECK(!valid_topic("chat\troom"));
    CHECK(!valid_topic("chat.r\xc3\xa9sum\xc3\xa9"));
    CHECK(!valid_topic("\xc3\xa9"));
    CHECK(!valid_topic("chat/room"));
    CHECK(!valid_topic("chat:room"));
    CHECK(!valid_topic("chat#"));
    CHECK(!valid_topic("chat+"));
    CHECK(!valid_topic("a,b"));
    CHECK(!valid_pattern("chat room"));
    CHECK(!valid_pattern("\xc3\xa9.*"));
    CHECK(rt_topic_check(rt_str("ab\0c", 4), 0, NULL) == RT_ETOPIC); /* an embedded NUL */
    CHECK(rt_topic_check(rt_str("abc", 2), 0, NULL) == RT_OK);     /* the length is what counts */
    CHECK(rt_topic_check(rt_str("ab.", 2), 0, NULL) == RT_OK);

    CASE("check: length 255 is the maximum");
    char buf[300];
    memset(buf, 'a', sizeof(buf));
    CHECK(rt_topic_check(rt_str(buf, 255), 0, NULL) == RT_OK);
    CHECK(rt_topic_check(rt_str(buf, 256), 0, NULL) == RT_ETOPIC);
    CHECK(rt_topic_check(rt_str(buf, 300), 1, NULL) == RT_ETOPIC);
    for (int i = 1; i < 255; i += 2)
        buf[i] = '.'; /* a.a.a....a: 128 one-byte segments, 255 bytes */
    CHECK(rt_topic_check(rt_str(buf, 255), 0, NULL) == RT_OK);
    buf[254] = '>';
    CHECK(rt_topic_check(rt_str(buf, 255), 1, NULL) == RT_OK);
    CHECK(rt_topic_check(rt_str(buf, 255), 0, NULL) == RT_ETOPIC);
    buf[255] = '.';
    buf[256] = 'a';
    CHECK(rt_topic_check(rt_str(buf, 257), 1, NULL) == RT_ETOPIC);
}

static void test_check_wildcards(void)
{
    int pat;
    CASE("check: wildcards are refused when not allowed (publishing)");
    CHECK(check("chat.*", 0, &pat) == RT_ETOPIC);
    CHECK(check("chat.>", 0, &pat) == RT_ETOPIC);
    CHECK(check("*", 0, &pat) == RT_ETOPIC);
    CHECK(check(">", 0, &pat) == RT_ETOPIC);
    CHECK(check("*.x", 0, &pat) == RT_ETOPIC);

    CASE("check: wildcards allowed in subscriptions, flagged as patterns");
    CHECK(check("chat.*", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check("news.>", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check("*", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check(">", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check("*.*", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check("a.*.c", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check("*.>", 1, &pat) == RT_OK);
    CHECK(pat == 1);
    CHECK(check("*.room-1.>", 1, &pat) == RT_OK);
    CHECK(pat == 1);

    CASE("check: '*' must be a whole segment");
    CHECK(!valid_pattern("a*"));
    CHECK(!valid_pattern("*a"));
    CHECK(!valid_pattern("chat.a*"));
    CHECK(!valid_pattern("chat.*b"));
    CHECK(!valid_pattern("**"));
    CHECK(!valid_pattern("chat.**"));
    CHECK(!valid_pattern("a*.b"));

    CASE("check: '>' must be a whole segment and only last");
    CHECK(!valid_pattern("a.>.b"));
    CHECK(!valid_pattern(">.a"));
    CHECK(!valid_pattern(">.>"));
    CHECK(!valid_pattern(">.*"));
    CHECK(!valid_pattern("a>"));
    CHECK(!valid_pattern("a.>>"));
    CHECK(!valid_pattern(">a"));
    CHECK(rt_topic_check(S("a.>.b"), 1, NULL) == RT_ETOPIC);
}

static void test_match(void)
{
    CASE("match: exact topics");
    CHECK(match("chat.room1", "chat.room1"));
    CHECK(!match("chat.room1", "chat.room2"));
    CHECK(!match("chat.room1", "chat.room10"));
    CHECK(!match("chat.room1", "chat.room"));
    CHECK(!match("chat.room1", "chat"));
    CHECK(!match("chat", "chat.room1"));
    CHECK(!match("a", "ab"));
    CHECK(!match("ab", "a"));
    CHECK(!match("Chat", "chat")); /* case-sensitive */

    CASE("match: '*' is exactly one segment");
    CHECK(match("chat.*", "chat.x"));
    CHECK(match("chat.*", "chat.room-1"));
    CHECK(!match("chat.*", "chat"));
    CHECK(!match("chat.*", "chat.x.y"));
    CHECK(!match("chat.*", "chatx.y"));
    CHECK(!match("chat.*", "news.x"));
    CHECK(match("*", "a"));
    CHECK(!match("*", "a.b"));
    CHECK(match("*.x", "a.x"));
    CHECK(!match("*.x", "a.y"));
    CHECK(!match("*.x", "x"));
    CHECK(!match("*.x", "a.b.x"));
    CHECK(match("a.*.c", "a.b.c"));
    CHECK(!match("a.*.c", "a.b.d"));
    CHECK(!match("a.*.c", "a.c"));
    CHECK(match("*.*", "a.b"));
    CHECK(!match("*.*", "a"));
    CHECK(!match("*.*", "a.b.c"));

    CASE("match: '>' is one or more trailing segments");
    CHECK(match("chat.>", "chat.x"));
    CHECK(match("chat.>", "chat.x.y"));
    CHECK(match("chat.>", "chat.x.y.z"));
    CHECK(!match("chat.>", "chat"));
    CHECK(!match("chat.>", "chatx.y"));
    CHECK(!match("chat.>", "news.chat.x"));
    CHECK(match(">", "a"));
    CHECK(match(">", "a.b.c"));
    CHECK(match("*.>", "a.b"));
    CHECK(match("*.>", "a.b.c"));
    CHECK(!match("*.>", "a"));
    CHECK(match("a.*.>", "a.b.c"));
    CHECK(!match("a.*.>", "a.b"));
}

static void test_covers(void)
{
    CASE("covers: '>' covers everything");
    CHECK(covers(">", "a"));
    CHECK(covers(">", "chat.room1"));
    CHECK(covers(">", "chat.*"));
    CHECK(covers(">", "chat.>"));
    CHECK(covers(">", "*"));
    CHECK(covers(">", ">"));
    CHECK(covers(">", "*.*.>"));

    CASE("covers: chat.*");
    CHECK(covers("chat.*", "chat.x"));
    CHECK(covers("chat.*", "chat.*"));
    CHECK(!covers("chat.*", "chat.>"));
    CHECK(!covers("chat.*", "chat.a.b"));
    CHECK(!covers("chat.*", "chat"));
    CHECK(!covers("chat.*", "news.x"));
    CHECK(!covers("chat.*", "*.x"));
    CHECK(!covers("chat.*", ">"));

    CASE("covers: chat.>");
    CHECK(covers("chat.>", "chat.*"));
    CHECK(covers("chat.>", "chat.a.b"));
    CHECK(covers("chat.>", "chat.>"));
    CHECK(covers("chat.>", "chat.x"));
    CHECK(covers("chat.>", "chat.*.x"));
    CHECK(covers("chat.>", "chat.a.>"));
    CHECK(!covers("chat.>", "chat"));
    CHECK(!covers("chat.>", "news.x"));
    CHECK(!covers("chat.>", "*.x"));
    CHECK(!covers("chat.>", ">"));

    CASE("covers: a literal covers only itself");
    CHECK(covers("chat.room1", "chat.room1"));
    CHECK(!covers("chat.room1", "chat.room2"));
    CHECK(!covers("chat.room1", "chat.*"));
    CHECK(!covers("chat.room1", "chat.>"));
    CHECK(!covers("chat.room1", "*.room1"));
    CHECK(!covers("chat.room1", "chat"));
    CHECK(!covers("chat.room1", "chat.room1.x"));

    CASE("covers: crossed wildcards");
    CHECK(!covers("*.x", "a.*"));
    CHECK(!covers("a.*", "*.x"));
    CHECK(covers("*.x", "a.x"));
    CHECK(covers("*.x", "*.x"));
    CHECK(covers("a.*", "a.x"));
    CHECK(covers("*.*", "a.*"));
    CHECK(covers("*.*", "*.x"));
    CHECK(!covers("*.*", "a.>"));
    CHECK(covers("*.>", "a.>"));
    CHECK(covers("*.>", "a.b.c"));
    CHECK(!covers("*.>", "a"));
    CHECK(!covers("a.>", "*.b"));
    CHECK(!covers("*", ">"));
    CHECK(covers("*", "*"));
    CHECK(covers("*", "a"));
    CHECK(!covers("*", "a.b"));

    CASE("covers agrees with match on literal topics");
    const char *pats[] = {">", "*", "chat.*", "chat.>", "*.x", "a.*.c", "chat.room1", "*.>"};
    const char *tops[] = {"a", "chat", "chat.x", "chat.room1", "a.x", "a.b.c", "chat.a.b", "x.y.z.w"};
    int agree = 1;
    for (size_t i = 0; i < sizeof(pats) / sizeof(*pats); i++)
        for (size_t k = 0; k < sizeof(tops) / sizeof(*tops); k++)
            if (covers(pats[i], tops[k]) != match(pats[i], tops[k]))
                agree = 0;
    CHECK(agree);
}

static void test_id(void)
{
    rt_id_t id;
    char buf[RT_ID_MAX + 1];

    CASE("id: parse valid ids");
    CHECK(parse("e:5", &id) == RT_OK);
    CHECK(rt_str_eqc(id.epoch, "e"));
    CHECK(id.seq == 5);
    CHECK(parse("abc123XY:0", &id) == RT_OK);
    CHECK(rt_str_eqc(id.epoch, "abc123XY"));
    CHECK(id.seq == 0);
    CHECK(parse("a_b-c:42", &id) == RT_OK);
    CHECK(rt_str_eqc(id.epoch, "a_b-c"));
    CHECK(id.seq == 42);
    CHECK(parse("e:0007", &id) == RT_OK);
    CHECK(id.seq == 7);
    CHECK(parse("e:9999999999999999999", &id) == RT_OK); /* 19 digits */
    CHECK(id.seq == 9999999999999999999ULL);
    CHECK(parse("abcdefghijklmnopqrstuvwxyz012345:1", &id) == RT_OK); /* 32-char epoch */
    CHECK(id.epoch.len == 32);
    CHECK(id.seq == 1);
    /* the epoch slice points into the input */
    const char *src = "ep:12";
    CHECK(rt_id_parse(S(src), &id) == RT_OK && id.epoch.base == src && id.epoch.len == 2);

    CASE("id: malformed ids");
    CHECK(parse("abc", &id) == RT_EID);
    CHECK(parse(":5", &id) == RT_EID);
    CHECK(parse("e:", &id) == RT_EID);
    CHECK(parse("e:12a", &id) == RT_EID);
    CHECK(parse("e:-1", &id) == RT_EID);
    CHECK(parse("e:+1", &id) == RT_EID);
    CHECK(parse("e: 1", &id) == RT_EID);
    CHECK(parse("e:1 ", &id) == RT_EID);
    CHECK(parse("e:1:2", &id) == RT_EID);
    CHECK(parse("e.x:1", &id) == RT_EID);
    CHECK(parse("e x:1", &id) == RT_EID);
    CHECK(parse("\xc3\xa9:1", &id) == RT_EID);
    CHECK(parse("", &id) == RT_EID);
    CHECK(parse(":", &id) == RT_EID);
    CHECK(parse("12", &id) == RT_EID);
    CHECK(parse("abcdefghijklmnopqrstuvwxyz0123456:1", &id) == RT_EID); /* 33-char epoch */
    CHECK(parse("e:12345678901234567890", &id) == RT_EID);              /* 20-digit seq */
    CHECK(parse("e:99999999999999999999999", &id) == RT_EID);
    CHECK(rt_id_parse(rt_str(NULL, 0), &id) == RT_EID);
    CHECK(rt_id_parse(rt_str("e:1\0", 4), &id) == RT_EID);

    CASE("id: format");
    size_t n = rt_id_format(buf, S("ep"), 7);
    CHECK(n == 4);
    CHECK(memcmp(buf, "ep:7", 4) == 0);
    n = rt_id_format(buf, S("abc"), 0);
    CHECK(n == 5 && memcmp(buf, "abc:0", 5) == 0);
    n = rt_id_format(buf, S("abcdefghijklmnopqrstuvwxyz012345"), 18446744073709551615ULL);
    CHECK(n == 32 + 1 + 20);
    CHECK(n <= RT_ID_MAX);
    CHECK(memcmp(buf, "abcdefghijklmnopqrstuvwxyz012345:18446744073709551615", n) == 0);

    CASE("id: format then parse round-trips");
    const uint64_t seqs[] = {0, 1, 9, 10, 99, 12345, 4294967295ULL, 4294967296ULL, 1000000000000000000ULL,
                             9999999999999999999ULL};
    const char *epochs[] = {"e", "x7Kq9mZp", "a_b-c", "abcdefghijklmnopqrstuvwxyz012345"};
    int rt_ok = 1;
    for (size_t e = 0; e < sizeof(epochs) / sizeof(*epochs); e++) {
        for (size_t i = 0; i < sizeof(seqs) / sizeof(*seqs); i++) {
            n = rt_id_format(buf, S(epochs[e]), seqs[i]);
            if (rt_id_parse(rt_str(buf, n), &id) != RT_OK || !rt_str_eqc(id.epoch, epochs[e]) || id.seq != seqs[i]) {
                printf("  round trip failed: %s %llu -> %.*s\n", epochs[e], (unsigned long long)seqs[i], (int)n, buf);
                rt_ok = 0;
            }
        }
    }
    CHECK(rt_ok);

    CASE("id: seqs compare numerically, not as strings");
    rt_id_t a, b;
    CHECK(parse("e:9", &a) == RT_OK && parse("e:10", &b) == RT_OK);
    CHECK(a.seq < b.seq);
    CHECK(parse("e:100", &a) == RT_OK && parse("e:99", &b) == RT_OK);
    CHECK(a.seq > b.seq);
    CHECK(parse("e:0010", &a) == RT_OK && parse("e:10", &b) == RT_OK);
    CHECK(a.seq == b.seq);
    CHECK(parse("x:5", &a) == RT_OK && parse("y:5", &b) == RT_OK);
    CHECK(a.seq == b.seq && !rt_str_eq(a.epoch, b.epoch));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a sanitizer abort */
    test_check_valid();
    test_check_invalid();
    test_check_wildcards();
    test_match();
    test_covers();
    test_id();
    return UNIT_DONE();
}
