/* SSE event encoding (see sse_encode.h). Aborts on OOM like the broker does. */
#include <stdlib.h>
#include <string.h>

#include "sse_encode.h"

static void append(char **p, const void *src, size_t n)
{
    if (n)
        memcpy(*p, src, n);
    *p += n;
}

rt_str_t sse_encode(rt_str_t id, rt_str_t event, rt_str_t data)
{
    size_t lines = 1;
    for (size_t i = 0; i < data.len; i++)
        if (data.base[i] == '\n' || data.base[i] == '\r')
            lines++;
    size_t cap = 4 + id.len + 1 + 7 + event.len + 1 + data.len + lines * 7 + 1;
    char *out = malloc(cap), *p = out;
    if (out == NULL)
        abort();
    if (id.len) {
        append(&p, "id: ", 4);
        append(&p, id.base, id.len);
        append(&p, "\n", 1);
    }
    if (event.len) {
        append(&p, "event: ", 7);
        append(&p, event.base, event.len);
        append(&p, "\n", 1);
    }
    size_t start = 0;
    for (size_t i = 0; i <= data.len; i++) {
        if (i < data.len && data.base[i] != '\n' && data.base[i] != '\r')
            continue;
        append(&p, "data: ", 6);
        append(&p, data.base + start, i - start);
        append(&p, "\n", 1);
        if (i + 1 < data.len && data.base[i] == '\r' && data.base[i + 1] == '\n')
            i++;
        start = i + 1;
    }
    append(&p, "\n", 1);
    return (rt_str_t){out, (size_t)(p - out)};
}
