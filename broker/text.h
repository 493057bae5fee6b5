/* Text helpers for wire formats: UTF-8 and JSON validation, JSON escaping, base64. */
#ifndef RT_TEXT_H
#define RT_TEXT_H

#include "rt.h"

int rt_utf8_valid(const char *p, size_t len);
/* Strict RFC 8259 value check with bounded nesting depth; 1 when valid. */
int rt_json_valid(const char *p, size_t len);
/* Append s as a quoted JSON string (valid UTF-8 expected; other bytes are escaped as \u00XX). */
/* See rt_services_t.json_object / json_unescape in plugin.h. */
int rt_json_object(rt_str_t json, rt_json_field_t *fields, size_t max);
int rt_json_unescape(rt_str_t value, char *out, size_t cap);
/* The elements of a JSON array (raw values); the count, or RT_EINVAL when not one valid array of at most max. */
int rt_json_array(rt_str_t json, rt_str_t *items, size_t max);
void rt_json_append_string(rt_buf_t *b, rt_str_t s);
/* Append valid JSON without insignificant whitespace (so it fits one SSE data: line). */
void rt_json_append_compact(rt_buf_t *b, rt_str_t json);
void rt_base64_append(rt_buf_t *b, rt_str_t s);

#endif
