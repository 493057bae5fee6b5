/*
 * Buffers, allocation, logging and clocks shared by the core.
 * Logging writes whole lines with one write so lines from workers never interleave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "rt.h"

int rt_log_level = RT_LOG_INFO;

void *rt_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fputs("rtbroker: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *rt_calloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL) {
        fputs("rtbroker: out of memory\n", stderr);
        abort();
    }
    return p;
}

void *rt_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fputs("rtbroker: out of memory\n", stderr);
        abort();
    }
    return q;
}

char *rt_strndup(rt_str_t s)
{
    char *p = rt_malloc(s.len + 1);
    if (s.len)
        memcpy(p, s.base, s.len);
    p[s.len] = '\0';
    return p;
}

void rt_buf_reserve(rt_buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    b->base = rt_realloc(b->base, cap);
    b->cap = cap;
}

void rt_buf_append(rt_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    rt_buf_reserve(b, n);
    memcpy(b->base + b->len, p, n);
    b->len += n;
}

void rt_buf_printf(rt_buf_t *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n <= 0)
        return;
    if ((size_t)n < sizeof(tmp)) {
        rt_buf_append(b, tmp, (size_t)n);
        return;
    }
    rt_buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void rt_buf_free(rt_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

void rt_vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (level > rt_log_level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s%s", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level < 0 ? 0 : level > 3 ? 3 : level],
                     prefix ? prefix : "", prefix ? ": " : "");
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

void rt_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vlog(level, NULL, fmt, ap);
    va_end(ap);
}

uint64_t rt_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t rt_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

const char *rt_strerror(int err)
{
    switch (err) {
    case RT_OK: return "ok";
    case RT_EINVAL: return "invalid_parameter";
    case RT_ETOPIC: return "invalid_topic";
    case RT_EID: return "invalid_id";
    case RT_ETOOMANY: return "too_many_topics";
    case RT_EUNAUTHORIZED: return "unauthorized";
    case RT_EFORBIDDEN: return "forbidden";
    case RT_ESLOW: return "slow_consumer";
    case RT_ECLOSED: return "closed";
    case RT_EUNAVAILABLE: return "unavailable";
    case RT_EUNKNOWN: return "unavailable";
    case RT_ENOMEM: return "internal_error";
    case RT_ETOOLARGE: return "too_large";
    case RT_EEVENT: return "invalid_event";
    case RT_ERATELIMIT: return "rate_limited";
    default: return "internal_error";
    }
}

int rt_err_status(int err)
{
    switch (err) {
    case RT_EINVAL:
    case RT_ETOPIC:
    case RT_EID:
    case RT_ETOOMANY:
    case RT_EEVENT: return 400;
    case RT_EUNAUTHORIZED: return 401;
    case RT_EFORBIDDEN: return 403;
    case RT_ETOOLARGE: return 413;
    case RT_ERATELIMIT: return 429;
    case RT_EUNAVAILABLE:
    case RT_EUNKNOWN: return 503;
    default: return 500;
    }
}
