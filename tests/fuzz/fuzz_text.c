/* Text helpers of broker/text.c: UTF-8 and JSON validation, object and array splitting, unescaping, string
 * escaping, compaction and base64, checked against each other and against the WebSocket plugin's
 * incremental UTF-8 validator; and the message envelope (broker/message.c) built from the input as a
 * payload and as a Content-Type, which must be one line of JSON. */
#include "fuzz.h"
#include "message.h"
#include "text.h"
#include "ws_frame.h"

static int utf8_incremental(const uint8_t *p, size_t n, size_t cut)
{
    ws_utf8_t u = {0, 0, 0};
    if (ws_utf8_feed(&u, p, cut) != 0 || ws_utf8_feed(&u, p + cut, n - cut) != 0)
        return 0;
    return ws_utf8_complete(&u);
}

static char first_char(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i < n ? s[i] : 0;
}

/* A string value from rt_json_object or rt_json_array, unescaped at several capacities. */
static void check_unescape(rt_str_t v)
{
    size_t cap = v.len;
    char *out = malloc(cap ? cap : 1);
    FUZZ_ASSERT(out != NULL);
    int n = rt_json_unescape(v, out, cap); /* a decoded string is never longer than its JSON */
    FUZZ_ASSERT(n >= 0 && (size_t)n <= cap);
    FUZZ_ASSERT(rt_utf8_valid(out, (size_t)n));
    if (n > 0) {
        char *small = malloc((size_t)n - 1 ? (size_t)n - 1 : 1);
        FUZZ_ASSERT(small != NULL);
        FUZZ_ASSERT(rt_json_unescape(v, small, (size_t)n - 1) < 0);
        free(small);
    }
    /* escaping the text again gives a JSON string that decodes to the same bytes */
    rt_buf_t b = {0};
    rt_json_append_string(&b, rt_str(out, (size_t)n));
    FUZZ_ASSERT(rt_json_valid(b.base, b.len));
    char *again = malloc(b.len);
    FUZZ_ASSERT(again != NULL);
    int m = rt_json_unescape(rt_str(b.base, b.len), again, b.len);
    FUZZ_ASSERT(m == n && memcmp(again, out, (size_t)n) == 0);
    free(again);
    rt_buf_free(&b);
    free(out);
}

static void check_envelope(rt_str_t ctype, rt_str_t data)
{
    rt_msg_t *m = rt_msg_new(RT_STRLIT("chat.a"), RT_STRLIT("ev"), ctype, data);
    rt_msg_set_id(m, RT_STRLIT("e1"), 7);
    rt_str_t env = rt_msg_envelope(m);
    FUZZ_ASSERT(rt_json_valid(env.base, env.len));
    FUZZ_ASSERT(memchr(env.base, '\n', env.len) == NULL && memchr(env.base, '\r', env.len) == NULL);
    rt_msg_unref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    rt_str_t in = rt_str(s, size);

    int utf8 = rt_utf8_valid(s, size);
    FUZZ_ASSERT(utf8 == utf8_incremental(data, size, 0));
    FUZZ_ASSERT(utf8 == utf8_incremental(data, size, size / 2));

    int valid = rt_json_valid(s, size);
    if (valid) {
        FUZZ_ASSERT(utf8);                       /* JSON text is UTF-8 */
        FUZZ_ASSERT(memchr(s, 0, size) == NULL); /* and has no NUL, escaped or not */
        rt_buf_t b = {0};
        rt_json_append_compact(&b, in);
        FUZZ_ASSERT(b.len <= size && rt_json_valid(b.base, b.len));
        rt_buf_free(&b);
    }

    rt_json_field_t f[16];
    int n = rt_json_object(in, f, 16);
    if (n >= 0) {
        FUZZ_ASSERT(valid);
        for (int i = 0; i < n; i++) {
            FUZZ_ASSERT(rt_json_valid(f[i].value.base, f[i].value.len));
            char key[64];
            rt_str_t k = rt_str(f[i].key.base - 1, f[i].key.len + 2); /* the key with its quotes */
            int kl = rt_json_unescape(k, key, sizeof(key));
            FUZZ_ASSERT(kl >= 0 || f[i].key.len >= sizeof(key));
            if (f[i].type == 's')
                check_unescape(f[i].value);
        }
    } else if (valid && first_char(s, size) == '{') {
        rt_json_field_t *many = malloc(size * sizeof(*many)); /* fails only for having more than 16 members */
        FUZZ_ASSERT(many != NULL);
        FUZZ_ASSERT(rt_json_object(in, many, size) > 16);
        free(many);
    }

    rt_str_t items[16];
    n = rt_json_array(in, items, 16);
    if (n >= 0) {
        FUZZ_ASSERT(valid);
        for (int i = 0; i < n; i++)
            if (items[i].len && items[i].base[0] == '"')
                check_unescape(items[i]);
    }

    if (utf8) {
        rt_buf_t b = {0};
        rt_json_append_string(&b, in);
        FUZZ_ASSERT(rt_json_valid(b.base, b.len));
        rt_buf_free(&b);
    }
    check_envelope(RT_STRLIT("application/json"), in);
    check_envelope(in, RT_STRLIT("x"));

    rt_buf_t b64 = {0};
    rt_base64_append(&b64, in);
    FUZZ_ASSERT(b64.len == (size + 2) / 3 * 4);
    rt_buf_free(&b64);
    return 0;
}
