/* A plugin whose init refuses to start: the broker must not start. */
#define TINY_NAME "initfail"
#define TINY_PATH "/initfail"
#define TINY_INIT_RESULT (-1)
#include "tiny.c"
