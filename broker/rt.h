/*
 * Small shared pieces of the broker core: slices, growable buffers, logging, time.
 * Everything here is thread-safe or per-caller; nothing here knows h2o or a transport.
 */
#ifndef RT_H
#define RT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "rtbroker/plugin.h"

#define RT_VERSION "0.1.0"

#define rt_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline rt_str_t rt_str(const char *base, size_t len)
{
    rt_str_t s = {base, len};
    return s;
}
#define RT_STRLIT(lit) rt_str((lit), sizeof(lit) - 1)
static inline rt_str_t rt_cstr(const char *s) { return rt_str(s, s ? strlen(s) : 0); }
static inline int rt_str_eq(rt_str_t a, rt_str_t b) { return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0); }
static inline int rt_str_eqc(rt_str_t a, const char *c) { return rt_str_eq(a, rt_cstr(c)); }
char *rt_strndup(rt_str_t s); /* NUL-terminated copy; aborts on OOM */

/* Growable byte buffer. */
typedef struct rt_buf {
    char *base;
    size_t len, cap;
} rt_buf_t;
void rt_buf_reserve(rt_buf_t *b, size_t extra);
void rt_buf_append(rt_buf_t *b, const void *p, size_t n);
static inline void rt_buf_appends(rt_buf_t *b, rt_str_t s) { rt_buf_append(b, s.base, s.len); }
static inline void rt_buf_appendc(rt_buf_t *b, const char *s) { rt_buf_append(b, s, strlen(s)); }
void rt_buf_printf(rt_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_buf_free(rt_buf_t *b);

void *rt_malloc(size_t n);  /* aborts on OOM: the broker cannot serve without memory */
void *rt_calloc(size_t n, size_t sz);
void *rt_realloc(void *p, size_t n);

enum { RT_LOG_ERROR = 0, RT_LOG_WARN = 1, RT_LOG_INFO = 2, RT_LOG_DEBUG = 3 };
extern int rt_log_level;
void rt_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_vlog(int level, const char *prefix, const char *fmt, va_list ap);

uint64_t rt_now_ms(void); /* monotonic */
/* now - then, or 0 when "then" was read later (on another thread): an unsigned difference would wrap */
static inline uint64_t rt_ms_since(uint64_t then, uint64_t now) { return now > then ? now - then : 0; }
uint64_t rt_wall_ms(void);

const char *rt_strerror(int err);
int rt_err_status(int err); /* the HTTP status of an RT_E* code */

#endif
