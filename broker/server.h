/* The HTTP server: h2o configuration, listeners, worker threads and request routing. */
#ifndef RT_SERVER_H
#define RT_SERVER_H

#include <openssl/ssl.h>

#include "rt.h"

/* Binds every listener (errors name the address) and prepares the workers. */
int rt_server_init(size_t nworkers, char *err, size_t errlen);
void rt_server_start(void);
/* Main thread, after start: new handshakes on TLS listener i use ctx (each worker takes its own reference). */
void rt_server_set_tls_ctx(size_t listener, SSL_CTX *ctx);
/* Asks every worker to drain, waits for them (at most shutdown.drain + a margin). */
void rt_server_shutdown(void);

#endif
