/* A table asking for more message cache slots than a plugin may have (0..4). */
#define TINY_NAME "badslots"
#define TINY_PATH "/badslots"
#define TINY_SLOTS 5
#include "tiny.c"
