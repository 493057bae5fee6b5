/* SSE event encoding, a pure function so the unit tests can check it byte for byte. */
#ifndef RT_SSE_ENCODE_H
#define RT_SSE_ENCODE_H

#include "rtbroker/plugin.h"

static const rt_str_t rt_str_empty = {"", 0};

/* One event: "id:" (when id is not empty), "event:" (when not empty), then one "data:" line per
 * line of data (CR, LF and CRLF each end a line) and a blank line. Returns malloc'd bytes. */
rt_str_t sse_encode(rt_str_t id, rt_str_t event, rt_str_t data);

#endif
