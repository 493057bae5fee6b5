/* The HTTP server: h2o configuration, listeners, worker threads and request routing. */
#ifndef RT_SERVER_H
#define RT_SERVER_H

#include "rt.h"

/* Binds every listener (errors name the address) and prepares the workers. */
int rt_server_init(size_t nworkers, char *err, size_t errlen);
void rt_server_start(void);
/* Asks every worker to drain, waits for them (at most shutdown.drain + a margin). */
void rt_server_shutdown(void);

#endif
