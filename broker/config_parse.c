/* The value syntax of the configuration: durations, sizes, listen addresses and secrets (text, env:NAME, file:/path). */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

int rt_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (end == s || errno || !isfinite(d) || d < 0)
        return -1;
    double mul = 1000; /* bare numbers are seconds */
    if (*end == '\0' || strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else if (strcmp(end, "d") == 0)
        mul = 86400000;
    else
        return -1;
    if (d * mul > 9e15)
        return -1;
    *out = (int64_t)(d * mul + 0.5);
    return 0;
}

int rt_parse_size(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned long long mul = 1;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mul = 1;
    else if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kb") == 0 || strcasecmp(end, "kib") == 0)
        mul = 1024;
    else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mb") == 0 || strcasecmp(end, "mib") == 0)
        mul = 1024 * 1024;
    else if (strcasecmp(end, "g") == 0 || strcasecmp(end, "gb") == 0 || strcasecmp(end, "gib") == 0)
        mul = 1024ULL * 1024 * 1024;
    else
        return -1;
    if (v > (1ULL << 50) / mul)
        return -1;
    *out = (int64_t)(v * mul);
    return 0;
}

int rt_parse_addr(const char *text, rt_listen_addr_t *out)
{
    char host[128];
    const char *port;
    memset(out, 0, sizeof(*out));
    snprintf(out->text, sizeof(out->text), "%s", text);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
            return -1;
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL) {
            strcpy(host, "127.0.0.1");
            port = text;
        } else {
            if ((size_t)(colon - text) >= sizeof(host))
                return -1;
            memcpy(host, text, (size_t)(colon - text));
            host[colon - text] = '\0';
            port = colon + 1;
        }
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 1 || p > 65535)
        return -2;
    if (host[0] == '\0' || strcmp(host, "*") == 0)
        strcpy(host, "0.0.0.0");
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        out->len = sizeof(*sin);
        out->loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p);
        out->len = sizeof(*sin6);
        out->loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
    } else {
        return -1;
    }
    return 0;
}

int rt_read_file(const char *path, unsigned char **out, size_t *len, char *err, size_t errlen, const char *key)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rt_cfg_error(key, err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    rt_buf_t b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < (1 << 20))
        rt_buf_append(&b, chunk, n);
    fclose(f);
    rt_buf_append(&b, "", 1); /* NUL-terminated for text checks; not counted in len */
    *out = (unsigned char *)b.base;
    *len = b.len - 1;
    return 0;
}

int rt_cfg_secret(const char *key, unsigned char **out, size_t *len, char *err, size_t errlen)
{
    const char *s = rt_cfg_str(key);
    *out = NULL, *len = 0;
    if (s[0] == '\0')
        return 0;
    if (strncmp(s, "env:", 4) == 0) {
        const char *v = getenv(s + 4);
        if (v == NULL || v[0] == '\0') {
            rt_cfg_error(key, err, errlen, "the environment variable %s is not set (export it before starting)", s + 4);
            return -1;
        }
        *out = (unsigned char *)rt_strndup(rt_cstr(v));
        *len = strlen(v);
    } else if (strncmp(s, "file:", 5) == 0) {
        if (rt_read_file(s + 5, out, len, err, errlen, key) != 0)
            return -1;
        while (*len && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r'))
            (*len)--; /* a trailing newline from an editor is not part of the secret */
    } else {
        *out = (unsigned char *)rt_strndup(rt_cstr(s));
        *len = strlen(s);
    }
    if (*len == 0) {
        free(*out);
        *out = NULL;
        rt_cfg_error(key, err, errlen, "the secret is empty");
        return -1;
    }
    return 0;
}
