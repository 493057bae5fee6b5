/* Unit tests for the SSE event encoder (plugins/sse/sse_encode.h, API.md "SSE"), byte for byte. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt.h"
#include "sse_encode.h"
#include "unit.h"

static rt_str_t S(const char *s) { return rt_cstr(s); }

/* Encodes and compares with the expected bytes (explicit length so NULs would count too). */
static int enc_eq_n(rt_str_t id, rt_str_t event, rt_str_t data, const char *want, size_t wantlen)
{
    rt_str_t got = sse_encode(id, event, data);
    int ok = got.len == wantlen && memcmp(got.base, want, wantlen) == 0;
    if (!ok)
        printf("  got %zu bytes: \"%.*s\"\n  want %zu bytes: \"%s\"\n", got.len, (int)(got.len > 200 ? 200 : got.len),
               got.base, wantlen, want);
    free((void *)got.base);
    return ok;
}
static int enc_eq(const char *id, const char *event, const char *data, const char *want)
{
    return enc_eq_n(S(id), S(event), S(data), want, strlen(want));
}

static void test_fields(void)
{
    CASE("plain message with an id");
    CHECK(enc_eq("e:1", "", "hello", "id: e:1\ndata: hello\n\n"));
    CHECK(enc_eq("abc123:42", "", "{\"a\":1}", "id: abc123:42\ndata: {\"a\":1}\n\n"));

    CASE("with an event name");
    CHECK(enc_eq("e:2", "chat", "hi", "id: e:2\nevent: chat\ndata: hi\n\n"));
    CHECK(enc_eq("e:3", "rt.gap", "x", "id: e:3\nevent: rt.gap\ndata: x\n\n"));

    CASE("no id (ephemeral, presence): no id line");
    CHECK(enc_eq("", "", "hello", "data: hello\n\n"));
    CHECK(enc_eq("", "rt.join", "{\"topic\":\"t\"}", "event: rt.join\ndata: {\"topic\":\"t\"}\n\n"));
    CHECK(enc_eq_n(rt_str_empty, rt_str_empty, S("x"), "data: x\n\n", 9));
    CHECK(enc_eq_n(rt_str(NULL, 0), rt_str(NULL, 0), S("x"), "data: x\n\n", 9));

    CASE("empty payload is one empty data line");
    CHECK(enc_eq("", "", "", "data: \n\n"));
    CHECK(enc_eq("e:9", "", "", "id: e:9\ndata: \n\n"));
    CHECK(enc_eq_n(rt_str_empty, rt_str_empty, rt_str(NULL, 0), "data: \n\n", 8));
    CHECK(enc_eq("e:9", "ev", "", "id: e:9\nevent: ev\ndata: \n\n"));

    CASE("leading space and colon in the payload are kept after 'data: '");
    CHECK(enc_eq("", "", " x", "data:  x\n\n"));
    CHECK(enc_eq("", "", ":comment-like", "data: :comment-like\n\n"));
    CHECK(enc_eq("", "", "data: nested", "data: data: nested\n\n"));
}

static void test_line_breaks(void)
{
    CASE("LF starts a new data line");
    CHECK(enc_eq("e:1", "", "a\nb", "id: e:1\ndata: a\ndata: b\n\n"));
    CHECK(enc_eq("", "", "a\nb\nc", "data: a\ndata: b\ndata: c\n\n"));

    CASE("CR starts a new data line");
    CHECK(enc_eq("", "", "a\rb", "data: a\ndata: b\n\n"));

    CASE("CRLF is one line break");
    CHECK(enc_eq("", "", "a\r\nb", "data: a\ndata: b\n\n"));
    CHECK(enc_eq("", "", "a\r\nb\r\nc", "data: a\ndata: b\ndata: c\n\n"));

    CASE("LF CR is two line breaks");
    CHECK(enc_eq("", "", "a\n\rb", "data: a\ndata: \ndata: b\n\n"));

    CASE("blank lines inside the payload");
    CHECK(enc_eq("", "", "a\n\nb", "data: a\ndata: \ndata: b\n\n"));
    CHECK(enc_eq("", "", "a\r\n\r\nb", "data: a\ndata: \ndata: b\n\n"));
    CHECK(enc_eq("", "", "a\r\rb", "data: a\ndata: \ndata: b\n\n"));

    CASE("mixed CR CRLF");
    CHECK(enc_eq("", "", "a\r\r\nb", "data: a\ndata: \ndata: b\n\n"));
    CHECK(enc_eq("e:5", "m", "x\ry\r\nz\nw", "id: e:5\nevent: m\ndata: x\ndata: y\ndata: z\ndata: w\n\n"));

    CASE("trailing newline gives a final empty data line");
    CHECK(enc_eq("", "", "a\n", "data: a\ndata: \n\n"));
    CHECK(enc_eq("", "", "a\r", "data: a\ndata: \n\n"));
    CHECK(enc_eq("", "", "a\r\n", "data: a\ndata: \n\n"));
    CHECK(enc_eq("", "", "a\n\n", "data: a\ndata: \ndata: \n\n"));

    CASE("payload made only of line breaks");
    CHECK(enc_eq("", "", "\n", "data: \ndata: \n\n"));
    CHECK(enc_eq("", "", "\r", "data: \ndata: \n\n"));
    CHECK(enc_eq("", "", "\r\n", "data: \ndata: \n\n"));
    CHECK(enc_eq("", "", "\n\r", "data: \ndata: \ndata: \n\n"));
    CHECK(enc_eq("", "", "\r\r\n", "data: \ndata: \ndata: \n\n"));
    CHECK(enc_eq("", "", "\nx", "data: \ndata: x\n\n"));

    CASE("other bytes pass through verbatim");
    CHECK(enc_eq_n(rt_str_empty, rt_str_empty, rt_str("a\0b", 3), "data: a\0b\n\n", 11));
    CHECK(enc_eq("", "", "caf\xc3\xa9 \t\x01", "data: caf\xc3\xa9 \t\x01\n\n"));
}

static void test_large(void)
{
    CASE("a 64 KiB payload is one data line of exact length");
    size_t n = 64 * 1024;
    char *data = malloc(n);
    for (size_t i = 0; i < n; i++)
        data[i] = (char)('a' + i % 26);
    rt_str_t got = sse_encode(S("e:77"), rt_str_empty, rt_str(data, n));
    const char *head = "id: e:77\ndata: ";
    size_t hl = strlen(head);
    CHECK(got.len == hl + n + 2);
    CHECK(got.len >= hl && memcmp(got.base, head, hl) == 0);
    CHECK(got.len == hl + n + 2 && memcmp(got.base + hl, data, n) == 0);
    CHECK(got.len >= 2 && memcmp(got.base + got.len - 2, "\n\n", 2) == 0);
    size_t lfs = 0;
    for (size_t i = 0; i < got.len; i++)
        lfs += got.base[i] == '\n';
    CHECK(lfs == 3);
    free((void *)got.base);

    CASE("a 64 KiB payload of line breaks: one data line per break, plus one");
    for (size_t i = 0; i < n; i++)
        data[i] = i % 3 == 0 ? '\r' : i % 3 == 1 ? '\n' : 'x'; /* "\r\nx" repeated: CRLF is one break */
    got = sse_encode(rt_str_empty, rt_str_empty, rt_str(data, n));
    size_t breaks = 0;
    for (size_t i = 0; i < n; i++)
        breaks += data[i] == '\r' || (data[i] == '\n' && !(i > 0 && data[i - 1] == '\r'));
    size_t dl = 0;
    for (size_t i = 0; i + 6 <= got.len; i++)
        if ((i == 0 || got.base[i - 1] == '\n') && memcmp(got.base + i, "data: ", 6) == 0)
            dl++;
    CHECK(breaks == (n + 2) / 3);
    CHECK(dl == breaks + 1);
    /* every payload byte except the breaks, plus "data: " and "\n" per line, plus the final "\n" */
    size_t xs = n / 3; /* 'x' count: i%3==2 for i < n */
    CHECK(got.len == xs + dl * 7 + 1);
    CHECK(got.len >= 2 && got.base[got.len - 1] == '\n' && got.base[got.len - 2] == '\n');
    free((void *)got.base);

    CASE("a 64 KiB payload of lone CRs (worst case for the line count)");
    memset(data, '\r', n);
    got = sse_encode(S("e:1"), S("ev"), rt_str(data, n));
    CHECK(got.len == strlen("id: e:1\nevent: ev\n") + (n + 1) * 7 + 1);
    free((void *)got.base);
    free(data);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a sanitizer abort */
    test_fields();
    test_line_breaks();
    test_large();
    return UNIT_DONE();
}
