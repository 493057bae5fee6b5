/*
 * permessage-deflate with zlib. Outbound messages are compressed with no context takeover
 * by one stream per thread, so a message compresses to the same bytes for every
 * subscriber and is compressed once. Inbound messages are inflated with a fresh window
 * (we ask for client_no_context_takeover), bounded by the message size limit.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "ws_deflate.h"

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

static const char *find(const char *p, const char *end, char c)
{
    return p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
}

/* One offer: "permessage-deflate; param[=value]; ..." between p and end. */
static int offer_ok(const char *p, const char *end)
{
    p = skip_ws(p, end);
    const char *semi = find(p, end, ';');
    const char *name_end = semi ? semi : end;
    while (name_end > p && (name_end[-1] == ' ' || name_end[-1] == '\t'))
        name_end--;
    if ((size_t)(name_end - p) != 18 || strncasecmp(p, "permessage-deflate", 18) != 0)
        return 0;
    int seen[4] = {0};
    while (semi) {
        p = skip_ws(semi + 1, end);
        semi = find(p, end, ';');
        const char *pend = semi ? semi : end;
        while (pend > p && (pend[-1] == ' ' || pend[-1] == '\t'))
            pend--;
        const char *eq = find(p, pend, '=');
        const char *kend = eq ? eq : pend;
        while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        size_t klen = (size_t)(kend - p);
        const char *v = eq ? skip_ws(eq + 1, pend) : NULL;
        size_t vlen = v ? (size_t)(pend - v) : 0;
        if (v && vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
            v++, vlen -= 2;
        static const char *const params[] = {"server_no_context_takeover", "client_no_context_takeover",
                                             "server_max_window_bits", "client_max_window_bits"};
        int idx = -1;
        for (int i = 0; i < 4; i++)
            if (klen == strlen(params[i]) && strncasecmp(p, params[i], klen) == 0)
                idx = i;
        if (idx < 0)
            return 0; /* unknown parameter: decline this offer */
        if (seen[idx]++)
            return 0;
        if (idx <= 1 && v)
            return 0;
        if (idx >= 2 && v) {
            int bits = 0;
            for (size_t i = 0; i < vlen; i++) {
                if (v[i] < '0' || v[i] > '9' || bits > 100)
                    return 0;
                bits = bits * 10 + (v[i] - '0');
            }
            if (vlen == 0 || bits < 8 || bits > 15 || (vlen > 1 && v[0] == '0'))
                return 0;
            if (idx == 2 && bits != 15)
                return 0; /* shared compressed bytes use a 32 KiB window */
        }
        if (idx == 2 && !v)
            return 0; /* server_max_window_bits needs a value */
    }
    return 1;
}

int ws_deflate_accept(const char *header, size_t len)
{
    const char *p = header, *end = header + len;
    while (p < end) {
        const char *comma = find(p, end, ',');
        const char *oend = comma ? comma : end;
        if (offer_ok(p, oend))
            return 1;
        p = oend + 1;
    }
    return 0;
}

/* One compressor per thread, released when the thread ends. */
static pthread_key_t deflater_key;
static pthread_once_t deflater_once = PTHREAD_ONCE_INIT;

static void deflater_free(void *p)
{
    deflateEnd(p);
    free(p);
}

static void deflater_key_init(void) { pthread_key_create(&deflater_key, deflater_free); }

unsigned char *ws_deflate_message(const unsigned char *in, size_t len, size_t reserve, size_t *outlen)
{
    pthread_once(&deflater_once, deflater_key_init);
    z_stream *deflater = pthread_getspecific(deflater_key);
    if (deflater == NULL) {
        deflater = calloc(1, sizeof(*deflater));
        if (deflater == NULL || deflateInit2(deflater, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            abort();
        pthread_setspecific(deflater_key, deflater);
    } else {
        deflateReset(deflater);
    }
    size_t cap = reserve + deflateBound(deflater, (uLong)len) + 16;
    unsigned char *out = malloc(cap);
    if (out == NULL)
        abort();
    deflater->next_in = (unsigned char *)in;
    deflater->avail_in = (uInt)len;
    deflater->next_out = out + reserve;
    deflater->avail_out = (uInt)(cap - reserve);
    deflate(deflater, Z_SYNC_FLUSH);
    size_t n = cap - reserve - deflater->avail_out;
    if (n >= 4 && memcmp(out + reserve + n - 4, "\x00\x00\xff\xff", 4) == 0)
        n -= 4;
    *outlen = n;
    return out;
}

int ws_inflate_message(const unsigned char *in, size_t len, size_t max, unsigned char **out, size_t *outlen)
{
    static const unsigned char tail[4] = {0x00, 0x00, 0xff, 0xff};
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -15) != Z_OK)
        return -1;
    size_t cap = len * 4 + 64 < max + 1 ? len * 4 + 64 : max + 1, n = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL)
        abort();
    int rc = Z_OK;
    for (int pass = 0; pass < 2 && rc != Z_STREAM_END; pass++) {
        z.next_in = pass == 0 ? (unsigned char *)in : (unsigned char *)tail;
        z.avail_in = pass == 0 ? (uInt)len : 4;
        do {
            if (n == cap) {
                if (cap > max) {
                    inflateEnd(&z);
                    free(buf);
                    return -2;
                }
                cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
                buf = realloc(buf, cap);
                if (buf == NULL)
                    abort();
            }
            z.next_out = buf + n;
            z.avail_out = (uInt)(cap - n);
            rc = inflate(&z, Z_SYNC_FLUSH);
            n = cap - z.avail_out;
            if (rc == Z_STREAM_END)
                break;
            if (rc != Z_OK && rc != Z_BUF_ERROR) {
                inflateEnd(&z);
                free(buf);
                return -1;
            }
            if (rc == Z_BUF_ERROR && z.avail_out > 0)
                break; /* no progress possible with this input */
        } while (z.avail_in > 0 || z.avail_out == 0);
    }
    inflateEnd(&z);
    if (n > max) {
        free(buf);
        return -2;
    }
    *out = buf;
    *outlen = n;
    return 0;
}
