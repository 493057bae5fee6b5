/* Unit tests for UTF-8 / JSON validation, JSON escaping and compaction, base64 (broker/text.h)
 * and the JSON envelope of a message (broker/message.h, API.md "JSON payloads"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "text.h"
#include "unit.h"

static rt_str_t S(const char *s) { return rt_cstr(s); }

static int utf8(const char *s) { return rt_utf8_valid(s, strlen(s)); }
static int json(const char *s) { return rt_json_valid(s, strlen(s)); }

static int buf_is(const rt_buf_t *b, const char *want)
{
    size_t n = strlen(want);
    int ok = b->len == n && (n == 0 || memcmp(b->base, want, n) == 0);
    if (!ok)
        printf("  got \"%.*s\" (%zu), want \"%s\" (%zu)\n", (int)b->len, b->base ? b->base : "", b->len, want, n);
    return ok;
}

static int esc_is(rt_str_t in, const char *want)
{
    rt_buf_t b = {0};
    rt_json_append_string(&b, in);
    int ok = buf_is(&b, want);
    rt_buf_free(&b);
    return ok;
}
/* Either spelling is valid JSON (e.g. \b or \u0008); wants is NULL-terminated. */
static int esc_one_of(rt_str_t in, const char *const *wants)
{
    rt_buf_t b = {0};
    rt_json_append_string(&b, in);
    int ok = 0;
    for (const char *const *w = wants; *w; w++)
        if (b.len == strlen(*w) && memcmp(b.base, *w, b.len) == 0)
            ok = 1;
    if (!ok)
        printf("  got \"%.*s\", want \"%s\" or another spelling\n", (int)b.len, b.base, wants[0]);
    rt_buf_free(&b);
    return ok;
}
#define ESC_ONE_OF(in, ...) esc_one_of((in), (const char *const[]){__VA_ARGS__, NULL})

static int compact_is(const char *in, const char *want)
{
    rt_buf_t b = {0};
    rt_json_append_compact(&b, S(in));
    int ok = buf_is(&b, want);
    rt_buf_free(&b);
    return ok;
}
static int b64_is(rt_str_t in, const char *want)
{
    rt_buf_t b = {0};
    rt_base64_append(&b, in);
    int ok = buf_is(&b, want);
    rt_buf_free(&b);
    return ok;
}

static void test_utf8(void)
{
    CASE("utf8: valid");
    CHECK(rt_utf8_valid("", 0));
    CHECK(rt_utf8_valid(NULL, 0));
    CHECK(utf8("hello, world ~!"));
    CHECK(rt_utf8_valid("a\0b", 3)); /* U+0000 is a character */
    CHECK(utf8("\x7f"));
    CHECK(utf8("\xc2\x80"));         /* U+0080, smallest 2-byte */
    CHECK(utf8("caf\xc3\xa9"));      /* é */
    CHECK(utf8("\xdf\xbf"));         /* U+07FF */
    CHECK(utf8("\xe0\xa0\x80"));     /* U+0800, smallest 3-byte */
    CHECK(utf8("\xe2\x82\xac"));     /* € */
    CHECK(utf8("\xed\x9f\xbf"));     /* U+D7FF, just below the surrogates */
    CHECK(utf8("\xee\x80\x80"));     /* U+E000, just above */
    CHECK(utf8("\xef\xbf\xbf"));     /* U+FFFF */
    CHECK(utf8("\xf0\x90\x80\x80")); /* U+10000, smallest 4-byte */
    CHECK(utf8("\xf0\x9f\x98\x80")); /* 😀 */
    CHECK(utf8("\xf4\x8f\xbf\xbf")); /* U+10FFFF, the last */
    CHECK(utf8("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!"));

    CASE("utf8: overlong encodings");
    CHECK(!utf8("\xc0\x80"));
    CHECK(!utf8("\xc0\xaf"));
    CHECK(!utf8("\xc1\xbf"));
    CHECK(!utf8("\xe0\x80\x80"));
    CHECK(!utf8("\xe0\x80\xaf"));
    CHECK(!utf8("\xe0\x9f\xbf"));
    CHECK(!utf8("\xf0\x80\x80\x80"));
    CHECK(!utf8("\xf0\x80\x80\xaf"));
    CHECK(!utf8("\xf0\x8f\xbf\xbf"));

    CASE("utf8: surrogates");
    CHECK(!utf8("\xed\xa0\x80")); /* U+D800 */
    CHECK(!utf8("\xed\xaf\xbf")); /* U+DBFF */
    CHECK(!utf8("\xed\xb0\x80")); /* U+DC00 */
    CHECK(!utf8("\xed\xbf\xbf")); /* U+DFFF */
    CHECK(!utf8("\xed\xa0\xbd\xed\xb8\x80")); /* a CESU-8 pair */

    CASE("utf8: above U+10FFFF and impossible bytes");
    CHECK(!utf8("\xf4\x90\x80\x80"));
    CHECK(!utf8("\xf5\x80\x80\x80"));
    CHECK(!utf8("\xf7\xbf\xbf\xbf"));
    CHECK(!utf8("\xf8\x88\x80\x80\x80"));
    CHECK(!utf8("\xfc\x84\x80\x80\x80\x80"));
    CHECK(!utf8("\xfe"));
    CHECK(!utf8("\xff"));
    CHECK(!utf8("a\xffz"));

    CASE("utf8: stray continuation and truncated sequences");
    CHECK(!utf8("\x80"));
    CHECK(!utf8("\xbf"));
    CHECK(!utf8("a\x80z"));
    CHECK(!utf8("\xc3\xa9\xa9"));
    CHECK(!utf8("\xc3"));
    CHECK(!utf8("ok\xc3"));
    CHECK(!utf8("\xe2\x82"));
    CHECK(!utf8("\xe2"));
    CHECK(!utf8("\xf0\x9f\x98"));
    CHECK(!utf8("\xf0\x9f"));
    CHECK(!utf8("\xe2\x82z"));
    CHECK(!utf8("\xc3\x28"));
    CHECK(!utf8("\xf0\x9f\x98z"));
    CHECK(!rt_utf8_valid("\xc3\xa9", 1)); /* the length bounds the check */
    CHECK(!rt_utf8_valid("\xf0\x9f\x98\x80", 3));
    CHECK(rt_utf8_valid("ab\xff", 2));
}

static void test_json_valid(void)
{
    CASE("json: valid scalars");
    const char *ok[] = {"null", "true", "false", "0", "-0", "1", "-1", "123", "1.5", "-0.5", "0.0", "1e10", "1E+10",
                        "1e-10", "2.5E3", "-1.25e-3", "12345678901234567890123", "\"\"", "\"abc\"",
                        "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\uD83D\\uDE00\\u0000\"", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
                        "\"\x7f\"", " 1 ", "\t\n\r true \r\n"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        if (!json(ok[i]))
            printf("  should be valid: %s\n", ok[i]);
        CHECK(json(ok[i]));
    }

    CASE("json: valid containers");
    const char *okc[] = {"[]", "{}", "[ ]", "{ }", "[1,2,3]", "[[[]]]", "{\"\":\"\"}", "{\"a\":1,\"a\":2}",
                         "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\",\"f\":[{}]}}",
                         " \t\n\r[ 1 , { \"a\" : 2 } , \"x\" ]\n", "[-1.5e3,0,\"\\u0041\"]", "{\"k\\\"ey\":\"v\"}"};
    for (size_t i = 0; i < sizeof(okc) / sizeof(*okc); i++) {
        if (!json(okc[i]))
            printf("  should be valid: %s\n", okc[i]);
        CHECK(json(okc[i]));
    }

    CASE("json: invalid");
    const char *bad[] = {"", " ", "[1,]", "{\"a\":1,}", "[,1]", "[,]", "{,}", "{'a':1}", "'a'", "{\"a\" 1}", "{\"a\":}",
                         "{a:1}", "{1:1}", "[1 2]", "\"a\tb\"", "\"a\nb\"", "\"\x01\"", "\"\x1f\"", "\"abc", "\"\\x\"",
                         "\"\\u12\"", "\"\\u12g4\"", "\"\\\"", "\"\\'\"", "tru", "True", "nul", "nulll", "undefined", "hello",
                         "NaN", "Infinity", "-Infinity", "01", "-01", "00", "1.", ".5", "+1", "1e", "1e+", "0x10", "--1",
                         "-", "1 2", "[1]]", "{}}", "[", "]", "{", "}", "{\"a\":1", "[1,2", "\"\xff\"", "\"\xc3\"",
                         "\"\xed\xa0\x80\"", "// c\n1", "/* c */ 1", "[1] x", "[1];", "\xef\xbb\xbf[]", "{\"a\":1 \"b\":2}",
                         "[true false]", "[1,,2]", "{\"a\"::1}", ":", ",", "\f1", "1\v", "\xc2\xa0" "1", "[1]\f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        if (json(bad[i]))
            printf("  should be invalid: %s\n", bad[i]);
        CHECK(!json(bad[i]));
    }
    CHECK(!rt_json_valid("[1]\0", 4)); /* a trailing NUL is not whitespace */
    CHECK(!rt_json_valid("\"a\0b\"", 5));
    CHECK(!rt_json_valid("\"\\\0\"", 4)); /* a backslash then NUL is no escape */
    rt_json_field_t field;
    CHECK(rt_json_object(rt_str("{\"k\":\"\\\0\"}", 10), &field, 1) == RT_EINVAL);
    CHECK(rt_json_valid("[1] garbage", 3)); /* the length bounds the value */
    CHECK(!rt_json_valid("[1,2]", 4));
    CHECK(!rt_json_valid("true", 3));
    CHECK(!rt_json_valid(NULL, 0));

    CASE("json: nesting depth 64 is accepted, 65 refused");
    static char deep[200001];
    for (int depth = 63; depth <= 66; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            deep[n++] = '[';
        for (int i = 0; i < depth; i++)
            deep[n++] = ']';
        int v = rt_json_valid(deep, n);
        CHECK(v == (depth <= 64));
    }
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            n += (size_t)sprintf(deep + n, "{\"k\":");
        deep[n++] = '1';
        for (int i = 0; i < depth; i++)
            deep[n++] = '}';
        CHECK(rt_json_valid(deep, n) == (depth == 64));
    }
    {
        size_t n = 0; /* mixed, 65 levels */
        for (int i = 0; i < 65; i++)
            n += (size_t)sprintf(deep + n, i % 2 ? "{\"a\":" : "[");
        deep[n++] = '0';
        for (int i = 64; i >= 0; i--)
            deep[n++] = i % 2 ? '}' : ']';
        CHECK(!rt_json_valid(deep, n));
    }
    memset(deep, '[', 200000); /* very deep input must be refused, not crash */
    CHECK(!rt_json_valid(deep, 200000));
    for (int i = 0; i < 100000; i++)
        deep[100000 + i] = ']';
    CHECK(!rt_json_valid(deep, 200000));
    CASE("json: long flat array is fine");
    size_t n = 0;
    deep[n++] = '[';
    for (int i = 0; i < 50000; i++) {
        deep[n++] = '1';
        deep[n++] = ',';
    }
    deep[n - 1] = ']';
    CHECK(rt_json_valid(deep, n));
}

static void test_json_string(void)
{
    CASE("json string: plain and empty");
    CHECK(esc_is(S(""), "\"\""));
    CHECK(esc_is(rt_str(NULL, 0), "\"\""));
    CHECK(esc_is(S("hello world"), "\"hello world\""));

    CASE("json string: quote, backslash, and common controls");
    CHECK(esc_is(S("a\"b"), "\"a\\\"b\""));
    CHECK(esc_is(S("a\\b"), "\"a\\\\b\""));
    CHECK(esc_is(S("\\\""), "\"\\\\\\\"\""));
    CHECK(esc_is(S("l1\nl2\rl3\tend"), "\"l1\\nl2\\rl3\\tend\""));

    CASE("json string: other control characters as \\u00XX");
    CHECK(esc_is(S("\x01"), "\"\\u0001\""));
    CHECK(ESC_ONE_OF(S("\x1f"), "\"\\u001f\"", "\"\\u001F\""));
    CHECK(esc_is(rt_str("a\0b", 3), "\"a\\u0000b\""));
    CHECK(ESC_ONE_OF(S("\x1b[0m"), "\"\\u001b[0m\"", "\"\\u001B[0m\""));
    CHECK(ESC_ONE_OF(S("\b"), "\"\\b\"", "\"\\u0008\""));
    CHECK(ESC_ONE_OF(S("\f"), "\"\\f\"", "\"\\u000c\"", "\"\\u000C\""));

    CASE("json string: UTF-8 passes through");
    CHECK(esc_is(S("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""));

    CASE("json string: every byte 0..127 gives valid JSON with no raw control byte");
    char all[128];
    for (int i = 0; i < 128; i++)
        all[i] = (char)i;
    rt_buf_t b = {0};
    rt_json_append_string(&b, rt_str(all, 128));
    CHECK(rt_json_valid(b.base, b.len));
    int raw = 0;
    for (size_t i = 0; i < b.len; i++)
        raw += (unsigned char)b.base[i] < 0x20;
    CHECK(raw == 0);
    rt_buf_free(&b);

    CASE("json string: appends after existing content");
    rt_buf_appendc(&b, "[1,");
    rt_json_append_string(&b, S("x\"y"));
    rt_buf_appendc(&b, "]");
    CHECK(buf_is(&b, "[1,\"x\\\"y\"]"));
    CHECK(rt_json_valid(b.base, b.len));
    rt_buf_free(&b);

    CASE("json string: long input with many escapes");
    size_t n = 10000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = i % 2 ? '"' : 'a';
    rt_json_append_string(&b, rt_str(big, n));
    CHECK(b.len == 2 + n / 2 + n); /* each quote becomes two bytes */
    CHECK(rt_json_valid(b.base, b.len));
    rt_buf_free(&b);
    free(big);
}

static void test_json_compact(void)
{
    CASE("json compact: whitespace outside strings removed");
    CHECK(compact_is(" { \"a\" : [ 1 , 2 ] , \"b\" : { } } ", "{\"a\":[1,2],\"b\":{}}"));
    CHECK(compact_is("\n[\r\n1,\t2\n]\n", "[1,2]"));
    CHECK(compact_is("[ true , false , null ]", "[true,false,null]"));
    CHECK(compact_is("  -1.5e3  ", "-1.5e3"));
    CHECK(compact_is("{}", "{}"));

    CASE("json compact: whitespace inside strings kept");
    CHECK(compact_is("{\"a b\": \" x  y \"}", "{\"a b\":\" x  y \"}"));
    CHECK(compact_is("\"  spaced\\t \"", "\"  spaced\\t \""));
    CHECK(compact_is("[\"\\u0020 \" , \" \"]", "[\"\\u0020 \",\" \"]"));

    CASE("json compact: escaped quotes and backslashes do not end strings");
    CHECK(compact_is("{\"k\": \"say \\\"hi there\\\" ok\"}", "{\"k\":\"say \\\"hi there\\\" ok\"}"));
    CHECK(compact_is("[\"a\\\\\", \"b c\"]", "[\"a\\\\\",\"b c\"]"));
    CHECK(compact_is("[\"\\\\\\\" x\" , 1]", "[\"\\\\\\\" x\",1]"));
    CHECK(compact_is("{ \"a\\\\\" : \" \\\\ \" }", "{\"a\\\\\":\" \\\\ \"}"));

    CASE("json compact: result is valid and appended after existing content");
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "X");
    const char *in = " {\n  \"list\" : [ 1, \"two words\", { \"n\" : null } ],\n  \"s\" : \"a\\\"b c\"\n}\n";
    rt_json_append_compact(&b, S(in));
    CHECK(buf_is(&b, "X{\"list\":[1,\"two words\",{\"n\":null}],\"s\":\"a\\\"b c\"}"));
    CHECK(b.len > 1 && rt_json_valid(b.base + 1, b.len - 1));
    rt_buf_free(&b);
    rt_json_append_compact(&b, S(""));
    CHECK(b.len == 0);
    rt_buf_free(&b);
}

static void test_base64(void)
{
    CASE("base64: RFC 4648 test vectors");
    CHECK(b64_is(S(""), ""));
    CHECK(b64_is(S("f"), "Zg=="));
    CHECK(b64_is(S("fo"), "Zm8="));
    CHECK(b64_is(S("foo"), "Zm9v"));
    CHECK(b64_is(S("foob"), "Zm9vYg=="));
    CHECK(b64_is(S("fooba"), "Zm9vYmE="));
    CHECK(b64_is(S("foobar"), "Zm9vYmFy"));

    CASE("base64: nothing to encode leaves an empty buffer unallocated");
    rt_buf_t none = {0};
    rt_base64_append(&none, S(""));
    CHECK(none.base == NULL && none.len == 0);

    CASE("base64: binary bytes use the standard alphabet with + and /");
    CHECK(b64_is(rt_str("\xff\xfe\xfd", 3), "//79"));
    CHECK(b64_is(rt_str("\xfb\xff", 2), "+/8="));
    CHECK(b64_is(rt_str("\x00", 1), "AA=="));
    CHECK(b64_is(rt_str("\x00\x00\x00", 3), "AAAA"));
    CHECK(b64_is(rt_str("\xff\x00\x01", 3), "/wAB"));
    CHECK(b64_is(rt_str("\x14\xfb\x9c\x03\xd9\x7e", 6), "FPucA9l+"));
    CHECK(b64_is(rt_str("\x14\xfb\x9c\x03\xd9", 5), "FPucA9k="));
    CHECK(b64_is(rt_str("\x14\xfb\x9c\x03", 4), "FPucAw=="));

    CASE("base64: appends, and long input has the right length");
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "pre:");
    rt_base64_append(&b, S("foobar"));
    CHECK(buf_is(&b, "pre:Zm9vYmFy"));
    rt_buf_free(&b);
    unsigned char bytes[1000];
    for (int i = 0; i < 1000; i++)
        bytes[i] = (unsigned char)(i * 7 + 3);
    for (size_t n = 995; n <= 1000; n++) {
        rt_base64_append(&b, rt_str((const char *)bytes, n));
        CHECK(b.len == (n + 2) / 3 * 4);
        rt_buf_free(&b);
    }
    /* all 256 byte values: every output char is in the alphabet */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    rt_base64_append(&b, rt_str((const char *)all, 256));
    int alphabet_ok = b.len == 344;
    for (size_t i = 0; i < b.len; i++) {
        char c = b.base[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/' ||
              (c == '=' && i >= b.len - 2)))
            alphabet_ok = 0;
    }
    CHECK(alphabet_ok);
    CHECK(b.len == 344 && memcmp(b.base, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g", 44) == 0);
    CHECK(b.len == 344 && memcmp(b.base + 340, "/w==", 4) == 0);
    rt_buf_free(&b);
}

/* ---- the JSON envelope ---- */

static rt_msg_t *msg(const char *topic, const char *event, const char *ct, rt_str_t data)
{
    return rt_msg_new(S(topic), S(event), S(ct), data);
}

static int env_is(rt_msg_t *m, const char *want)
{
    rt_str_t e = rt_msg_envelope(m);
    int ok = e.len == strlen(want) && memcmp(e.base, want, e.len) == 0;
    if (!ok)
        printf("  envelope %.*s\n  expected %s\n", (int)e.len, e.base, want);
    return ok;
}
static int env_has(rt_msg_t *m, const char *part)
{
    rt_str_t e = rt_msg_envelope(m);
    char *z = rt_strndup(e);
    int ok = strstr(z, part) != NULL;
    if (!ok)
        printf("  envelope %s\n  lacks %s\n", z, part);
    free(z);
    return ok;
}
static int env_lacks(rt_msg_t *m, const char *part)
{
    rt_str_t e = rt_msg_envelope(m);
    char *z = rt_strndup(e);
    int ok = strstr(z, part) == NULL;
    if (!ok)
        printf("  envelope %s\n  should not contain %s\n", z, part);
    free(z);
    return ok;
}
static int env_sane(rt_msg_t *m)
{
    rt_str_t e = rt_msg_envelope(m);
    return rt_json_valid(e.base, e.len) && memchr(e.base, '\n', e.len) == NULL && memchr(e.base, '\r', e.len) == NULL;
}

static void test_envelope(void)
{
    CASE("envelope: JSON payload with application/json is a JSON value, compacted");
    rt_msg_t *m = msg("chat.a", "", "application/json", S(" {\"x\": [1, 2],\n \"s\": \"a b\"} "));
    CHECK(m->flags & RT_MSG_JSON);
    CHECK(m->flags & RT_MSG_UTF8);
    CHECK(m->id.len == 0 && m->seq == 0);
    rt_msg_set_id(m, S("ep"), 7);
    CHECK(rt_str_eqc(m->id, "ep:7") && m->seq == 7);
    CHECK(rt_str_eqc(m->data, " {\"x\": [1, 2],\n \"s\": \"a b\"} ")); /* the payload itself stays verbatim */
    CHECK(env_is(m, "{\"id\":\"ep:7\",\"topic\":\"chat.a\",\"event\":null,\"data\":{\"x\":[1,2],\"s\":\"a b\"},"
                    "\"content_type\":\"application/json\"}"));
    CHECK(env_sane(m));
    rt_str_t e1 = rt_msg_envelope(m), e2 = rt_msg_envelope(m);
    CHECK(e1.base == e2.base && e1.len == e2.len); /* built once */
    rt_msg_unref(m);

    CASE("envelope: JSON scalars and charset parameter");
    m = msg("t", "ev", "application/json; charset=utf-8", S("42"));
    rt_msg_set_id(m, S("ep"), 8);
    CHECK(m->flags & RT_MSG_JSON);
    CHECK(env_has(m, "\"data\":42"));
    CHECK(env_has(m, "\"event\":\"ev\""));
    CHECK(env_has(m, "\"content_type\":\"application/json; charset=utf-8\""));
    CHECK(env_lacks(m, "encoding"));
    CHECK(env_sane(m));
    rt_msg_unref(m);
    m = msg("t", "", "Application/JSON", S("\"str\""));
    rt_msg_set_id(m, S("ep"), 9);
    CHECK(m->flags & RT_MSG_JSON); /* media types are case-insensitive */
    CHECK(env_has(m, "\"data\":\"str\""));
    rt_msg_unref(m);
    m = msg("t", "", "application/json;charset=utf-8", S("[true, null]"));
    rt_msg_set_id(m, S("ep"), 10);
    CHECK(env_has(m, "\"data\":[true,null]"));
    rt_msg_unref(m);

    CASE("envelope: invalid JSON under application/json falls back to a string");
    m = msg("t", "", "application/json", S("{bad json"));
    rt_msg_set_id(m, S("ep"), 11);
    CHECK(!(m->flags & RT_MSG_JSON));
    CHECK(m->flags & RT_MSG_UTF8);
    CHECK(env_has(m, "\"data\":\"{bad json\""));
    CHECK(env_sane(m));
    rt_msg_unref(m);
    m = msg("t", "", "application/json", S(""));
    rt_msg_set_id(m, S("ep"), 12);
    CHECK(!(m->flags & RT_MSG_JSON));
    CHECK(env_has(m, "\"data\":\"\""));
    CHECK(env_sane(m));
    rt_msg_unref(m);
    m = msg("t", "", "application/json", S("[1,]"));
    rt_msg_set_id(m, S("ep"), 13);
    CHECK(env_has(m, "\"data\":\"[1,]\""));
    rt_msg_unref(m);

    CASE("envelope: valid JSON without the JSON content type is a string");
    m = msg("t", "", "text/plain", S("[1, 2]"));
    rt_msg_set_id(m, S("ep"), 14);
    CHECK(!(m->flags & RT_MSG_JSON));
    CHECK(env_has(m, "\"data\":\"[1, 2]\""));
    rt_msg_unref(m);
    m = msg("t", "", "", S("{\"a\":1}"));
    rt_msg_set_id(m, S("ep"), 15);
    CHECK(env_has(m, "\"data\":\"{\\\"a\\\":1}\""));
    CHECK(env_lacks(m, "content_type"));
    CHECK(env_sane(m));
    rt_msg_unref(m);
    m = msg("t", "", "application/jsonx", S("1"));
    rt_msg_set_id(m, S("ep"), 16);
    CHECK(!(m->flags & RT_MSG_JSON));
    CHECK(env_has(m, "\"data\":\"1\""));
    rt_msg_unref(m);

    CASE("envelope: UTF-8 text is an escaped string");
    m = msg("chat.b", "msg", "text/plain", S("h\xc3\xa9llo\n\"q\"\ttab\\"));
    rt_msg_set_id(m, S("ep"), 17);
    CHECK(m->flags & RT_MSG_UTF8);
    CHECK(env_is(m, "{\"id\":\"ep:17\",\"topic\":\"chat.b\",\"event\":\"msg\",\"data\":\"h\xc3\xa9llo\\n\\\"q\\\"\\ttab\\\\\","
                    "\"content_type\":\"text/plain\"}"));
    CHECK(env_sane(m));
    rt_msg_unref(m);

    CASE("envelope: binary is base64 with encoding");
    m = msg("bin.t", "blob", "", rt_str("\xff\x00\x01", 3));
    rt_msg_set_id(m, S("ep"), 18);
    CHECK(!(m->flags & RT_MSG_UTF8));
    CHECK(!(m->flags & RT_MSG_JSON));
    CHECK(env_is(m, "{\"id\":\"ep:18\",\"topic\":\"bin.t\",\"event\":\"blob\",\"data\":\"/wAB\",\"encoding\":\"base64\"}"));
    CHECK(env_sane(m));
    rt_msg_unref(m);
    m = msg("bin.t", "", "application/json", S("\"\xff\""));
    rt_msg_set_id(m, S("ep"), 19);
    CHECK(!(m->flags & RT_MSG_JSON) && !(m->flags & RT_MSG_UTF8));
    CHECK(env_has(m, "\"data\":\"Iv8i\",\"encoding\":\"base64\""));
    CHECK(env_sane(m));
    rt_msg_unref(m);
    m = msg("bin.t", "", "application/octet-stream", S("caf\xc3"));
    rt_msg_set_id(m, S("ep"), 20);
    CHECK(env_has(m, "\"data\":\"Y2Fmww==\",\"encoding\":\"base64\""));
    CHECK(env_has(m, "\"content_type\":\"application/octet-stream\""));
    CHECK(env_sane(m));
    rt_msg_unref(m);

    CASE("envelope: a NUL byte is valid UTF-8 and is escaped");
    m = msg("t", "", "", rt_str("a\0b", 3));
    rt_msg_set_id(m, S("ep"), 21);
    CHECK(m->flags & RT_MSG_UTF8);
    CHECK(env_has(m, "\"data\":\"a\\u0000b\""));
    CHECK(env_sane(m));
    rt_msg_unref(m);

    CASE("envelope: ephemeral (no id) has id null");
    m = msg("t.e", "", "", S("hi"));
    CHECK(env_is(m, "{\"id\":null,\"topic\":\"t.e\",\"event\":null,\"data\":\"hi\"}"));
    CHECK(env_sane(m));
    rt_msg_unref(m);

    CASE("envelope: the message copies its inputs");
    char topic[] = "copy.t", data[] = "payload";
    m = rt_msg_new(S(topic), S(""), S(""), S(data));
    topic[0] = 'X';
    data[0] = 'X';
    CHECK(rt_str_eqc(m->topic, "copy.t"));
    CHECK(rt_str_eqc(m->data, "payload"));
    rt_msg_set_id(m, S("abcdefghijklmnopqrstuvwxyz012345"), 18446744073709551615ULL);
    CHECK(rt_str_eqc(m->id, "abcdefghijklmnopqrstuvwxyz012345:18446744073709551615"));
    CHECK(env_has(m, "\"id\":\"abcdefghijklmnopqrstuvwxyz012345:18446744073709551615\""));
    rt_msg_unref(m);

    CASE("envelope: a big JSON payload stays on one line");
    rt_buf_t b = {0};
    rt_buf_appendc(&b, "[\n");
    for (int i = 0; i < 2000; i++)
        rt_buf_printf(&b, "  {\"i\": %d, \"s\": \"v %d\"},\n", i, i);
    rt_buf_appendc(&b, "  null\n]\n");
    m = rt_msg_new(S("big.t"), S(""), S("application/json"), rt_str(b.base, b.len));
    rt_msg_set_id(m, S("ep"), 22);
    CHECK(m->flags & RT_MSG_JSON);
    CHECK(env_sane(m));
    CHECK(env_has(m, "\"data\":[{\"i\":0,\"s\":\"v 0\"},{\"i\":1,\"s\":\"v 1\"},"));
    CHECK(env_has(m, "{\"i\":1999,\"s\":\"v 1999\"},null]"));
    rt_msg_unref(m);
    rt_buf_free(&b);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a sanitizer abort */
    test_utf8();
    test_json_valid();
    test_json_string();
    test_json_compact();
    test_base64();
    test_envelope();
    return UNIT_DONE();
}
