/* A plugin named "longpoll" (with a path of its own): refused when the long-poll plugin is loaded. */
#define TINY_NAME "longpoll"
#define TINY_PATH "/dupname"
#include "tiny.c"
