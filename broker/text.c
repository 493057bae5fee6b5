/*
 * UTF-8 and JSON validation, JSON string escaping and base64, used to build the JSON
 * envelopes of API.md. Everything is bounded by the input length; JSON nesting by depth.
 */
#include "text.h"

#define JSON_MAX_DEPTH 64

int rt_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n;
        unsigned min, cp;
        if ((c & 0xe0) == 0xc0) {
            n = 1, min = 0x80, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, min = 0x800, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, min = 0x10000, cp = c & 0x07;
        } else {
            return 0;
        }
        if ((size_t)(end - p) <= n)
            return 0;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        p += n + 1;
    }
    return 1;
}

typedef struct {
    const char *p, *end;
} jcur_t;

static void skip_ws(jcur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int lit(jcur_t *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return 0;
    c->p += n;
    return 1;
}

static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static int number(jcur_t *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p >= c->end)
        return 0;
    if (*c->p == '0') {
        c->p++;
    } else if (is_digit(*c->p)) {
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    } else {
        return 0;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (c->p >= c->end || !is_digit(*c->p))
            return 0;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (c->p >= c->end || !is_digit(*c->p))
            return 0;
        while (c->p < c->end && is_digit(*c->p))
            c->p++;
    }
    return 1;
}

static int hex4(const char *p)
{
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        if (!(is_digit(h) || (h >= 'a' && h <= 'f') || (h >= 'A' && h <= 'F')))
            return 0;
    }
    return 1;
}

static int string(jcur_t *c)
{
    const char *start = ++c->p;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            int ok = rt_utf8_valid(start, (size_t)(c->p - start));
            c->p++;
            return ok;
        }
        if (ch < 0x20)
            return 0;
        if (ch == '\\') {
            if (c->end - c->p < 2)
                return 0;
            char e = c->p[1];
            if (e == 'u') {
                if (c->end - c->p < 6 || !hex4(c->p + 2))
                    return 0;
                c->p += 6;
                continue;
            }
            if (e == '\0' || !strchr("\"\\/bfnrt", e)) /* strchr finds the terminator too */
                return 0;
            c->p += 2;
            continue;
        }
        c->p++;
    }
    return 0;
}

static int value(jcur_t *c, int depth)
{
    skip_ws(c);
    if (c->p >= c->end)
        return 0;
    switch (*c->p) {
    case '{':
    case '[': {
        char close = *c->p == '{' ? '}' : ']';
        int obj = close == '}';
        if (depth >= JSON_MAX_DEPTH)
            return 0;
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 1;
        }
        for (;;) {
            if (obj) {
                skip_ws(c);
                if (c->p >= c->end || *c->p != '"' || !string(c))
                    return 0;
                skip_ws(c);
                if (c->p >= c->end || *c->p != ':')
                    return 0;
                c->p++;
            }
            if (!value(c, depth + 1))
                return 0;
            skip_ws(c);
            if (c->p >= c->end)
                return 0;
            if (*c->p == ',') {
                c->p++;
                continue;
            }
            if (*c->p == close) {
                c->p++;
                return 1;
            }
            return 0;
        }
    }
    case '"': return string(c);
    case 't': return lit(c, "true");
    case 'f': return lit(c, "false");
    case 'n': return lit(c, "null");
    default: return number(c);
    }
}

int rt_json_valid(const char *p, size_t len)
{
    jcur_t c = {p, p + len};
    if (!value(&c, 0))
        return 0;
    skip_ws(&c);
    return c.p == c.end;
}

int rt_json_object(rt_str_t json, rt_json_field_t *fields, size_t max)
{
    jcur_t c = {json.base, json.base + json.len};
    size_t n = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return RT_EINVAL;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}') {
        c.p++;
    } else {
        for (;;) {
            skip_ws(&c);
            const char *kstart = c.p;
            if (c.p >= c.end || *c.p != '"' || !string(&c))
                return RT_EINVAL;
            const char *kend = c.p;
            skip_ws(&c);
            if (c.p >= c.end || *c.p != ':')
                return RT_EINVAL;
            c.p++;
            skip_ws(&c);
            const char *vstart = c.p;
            if (!value(&c, 1))
                return RT_EINVAL;
            if (n == max)
                return RT_EINVAL;
            fields[n].key = rt_str(kstart + 1, (size_t)(kend - kstart - 2));
            fields[n].value = rt_str(vstart, (size_t)(c.p - vstart));
            char t = *vstart;
            fields[n].type = t == '"' ? 's' : t == '{' ? 'o' : t == '[' ? 'a' : t == 't' ? 't' : t == 'f' ? 'f' : t == 'n' ? 'z' : 'n';
            n++;
            skip_ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == '}') {
                c.p++;
                break;
            }
            return RT_EINVAL;
        }
    }
    skip_ws(&c);
    return c.p == c.end ? (int)n : RT_EINVAL;
}

int rt_json_array(rt_str_t json, rt_str_t *items, size_t max)
{
    jcur_t c = {json.base, json.base + json.len};
    size_t n = 0;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '[')
        return RT_EINVAL;
    c.p++;
    skip_ws(&c);
    if (c.p < c.end && *c.p == ']') {
        c.p++;
    } else {
        for (;;) {
            skip_ws(&c);
            const char *start = c.p;
            if (!value(&c, 1) || n == max)
                return RT_EINVAL;
            items[n++] = rt_str(start, (size_t)(c.p - start));
            skip_ws(&c);
            if (c.p < c.end && *c.p == ',') {
                c.p++;
                continue;
            }
            if (c.p < c.end && *c.p == ']') {
                c.p++;
                break;
            }
            return RT_EINVAL;
        }
    }
    skip_ws(&c);
    return c.p == c.end ? (int)n : RT_EINVAL;
}

static int put_utf8(char *out, size_t cap, size_t *o, unsigned cp)
{
    char tmp[4];
    size_t n;
    if (cp < 0x80)
        tmp[0] = (char)cp, n = 1;
    else if (cp < 0x800)
        tmp[0] = (char)(0xc0 | (cp >> 6)), tmp[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        tmp[0] = (char)(0xe0 | (cp >> 12)), tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3f)), tmp[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    else
        tmp[0] = (char)(0xf0 | (cp >> 18)), tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), tmp[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    if (*o + n > cap)
        return -1;
    memcpy(out + *o, tmp, n);
    *o += n;
    return 0;
}

static unsigned hexnum(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = p[i];
        v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
    }
    return v;
}

int rt_json_unescape(rt_str_t v, char *out, size_t cap)
{
    if (v.len < 2 || v.base[0] != '"' || v.base[v.len - 1] != '"')
        return RT_EINVAL;
    size_t o = 0;
    for (size_t i = 1; i + 1 < v.len; i++) {
        char ch = v.base[i];
        if (ch != '\\') {
            if (o == cap)
                return RT_EINVAL;
            out[o++] = ch;
            continue;
        }
        if (i + 2 >= v.len)
            return RT_EINVAL;
        char e = v.base[++i];
        unsigned cp;
        switch (e) {
        case 'b': cp = '\b'; break;
        case 'f': cp = '\f'; break;
        case 'n': cp = '\n'; break;
        case 'r': cp = '\r'; break;
        case 't': cp = '\t'; break;
        case 'u':
            if (i + 4 >= v.len || !hex4(v.base + i + 1))
                return RT_EINVAL;
            cp = hexnum(v.base + i + 1);
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < v.len && v.base[i + 1] == '\\' && v.base[i + 2] == 'u' &&
                hex4(v.base + i + 3)) {
                unsigned lo = hexnum(v.base + i + 3);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            if (cp >= 0xd800 && cp < 0xe000)
                cp = 0xfffd; /* a lone surrogate cannot be UTF-8 */
            break;
        default: cp = (unsigned char)e; break;
        }
        if (put_utf8(out, cap, &o, cp) != 0)
            return RT_EINVAL;
    }
    return (int)o;
}

void rt_json_append_string(rt_buf_t *b, rt_str_t s)
{
    static const char hex[] = "0123456789abcdef";
    rt_buf_reserve(b, s.len + 2);
    rt_buf_append(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.base[i];
        const char *esc = NULL;
        char u[6];
        if (ch == '"')
            esc = "\\\"";
        else if (ch == '\\')
            esc = "\\\\";
        else if (ch == '\n')
            esc = "\\n";
        else if (ch == '\r')
            esc = "\\r";
        else if (ch == '\t')
            esc = "\\t";
        else if (ch < 0x20 || ch == 0x7f) {
            u[0] = '\\', u[1] = 'u', u[2] = '0', u[3] = '0', u[4] = hex[ch >> 4], u[5] = hex[ch & 15];
        } else {
            continue;
        }
        rt_buf_append(b, s.base + run, i - run);
        if (esc)
            rt_buf_appendc(b, esc);
        else
            rt_buf_append(b, u, 6);
        run = i + 1;
    }
    rt_buf_append(b, s.base + run, s.len - run);
    rt_buf_append(b, "\"", 1);
}

void rt_json_append_compact(rt_buf_t *b, rt_str_t json)
{
    rt_buf_reserve(b, json.len);
    int in_str = 0;
    for (size_t i = 0; i < json.len; i++) {
        char c = json.base[i];
        if (in_str) {
            if (c == '\\') {
                b->base[b->len++] = c;
                c = json.base[++i];
            } else if (c == '"') {
                in_str = 0;
            }
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_str = 1;
        }
        b->base[b->len++] = c;
    }
}

void rt_base64_append(rt_buf_t *b, rt_str_t s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = (const unsigned char *)s.base;
    if (s.len == 0)
        return; /* an empty buffer has no base to write at */
    rt_buf_reserve(b, (s.len + 2) / 3 * 4);
    char *o = b->base + b->len;
    size_t i = 0;
    for (; i + 2 < s.len; i += 3) {
        *o++ = tbl[p[i] >> 2];
        *o++ = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
        *o++ = tbl[((p[i + 1] & 15) << 2) | (p[i + 2] >> 6)];
        *o++ = tbl[p[i + 2] & 63];
    }
    if (i < s.len) {
        *o++ = tbl[p[i] >> 2];
        if (i + 1 < s.len) {
            *o++ = tbl[((p[i] & 3) << 4) | (p[i + 1] >> 4)];
            *o++ = tbl[(p[i + 1] & 15) << 2];
        } else {
            *o++ = tbl[(p[i] & 3) << 4];
            *o++ = '=';
        }
        *o++ = '=';
    }
    b->len = (size_t)(o - b->base);
}
