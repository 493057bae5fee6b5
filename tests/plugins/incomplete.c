/* A table without its deliver callback: the loader must refuse it instead of crashing on the first message. */
#define TINY_NAME "incomplete"
#define TINY_PATH "/incomplete"
#define TINY_NO_DELIVER 1
#include "tiny.c"
