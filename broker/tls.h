/* TLS listeners: an OpenSSL context per TLS entry of `listen`, built at start and again on SIGHUP. */
#ifndef RT_TLS_H
#define RT_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

/* Builds the context of every TLS listener from its files; errors name listen[i].tls.cert or .key and the line. */
int rt_tls_init(char *err, size_t errlen);
/* The context in use for listen entry i, or NULL for a plain listener (main thread, or a worker before SIGHUPs). */
SSL_CTX *rt_tls_ctx(size_t i);
/* SIGHUP: builds new contexts from the same files and hands them to the workers for new handshakes; open
 * connections keep theirs. A listener whose files fail keeps its context. Logs each outcome; returns the failures. */
int rt_tls_reload(void);

#endif
