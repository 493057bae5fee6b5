/* A plugin claiming the explicit path /sse, which the SSE plugin claims: refused when both are loaded. */
#define TINY_NAME "dupath"
#define TINY_PATH "/sse"
#include "tiny.c"
