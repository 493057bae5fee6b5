/* A plugin built for another plugin ABI version: the loader must refuse it, naming both versions. */
#define TINY_NAME "oldabi"
#define TINY_PATH "/oldabi"
#define TINY_ABI (RT_PLUGIN_ABI_VERSION + 1)
#include "tiny.c"
