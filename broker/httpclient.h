/* A small HTTP/1.1 POST client for the backend hooks, on the calling worker's event loop (h2o's http1client). */
#ifndef RT_HTTPCLIENT_H
#define RT_HTTPCLIENT_H

#include "hub.h"
#include "rt.h"

#define RT_HTTPC_MAX_TARGETS 8
#define RT_HTTPC_MAX_ANSWER (64 * 1024)

/* Where calls go: http://host[:port][/path], or https:// when the caller allows it. */
typedef struct rt_httpc_target {
    char *host, *path, *authority;
    uint16_t port;
    int slot; /* index of its keep-alive pool in each worker */
    int tls;
} rt_httpc_target_t;

typedef struct rt_httpc_call rt_httpc_call_t;
/* status 0 and err set when the call failed (connect, I/O, timeout, answer too large); body valid during the call. */
typedef void (*rt_httpc_done_t)(void *arg, int status, rt_str_t body, const char *err);

/* Main thread: parses url into t (freed with rt_httpc_target_free); 0, or -1 with *why. https:// only with allow_tls
 * (then rt_httpc_target_tls). */
int rt_httpc_target_parse(const char *url, rt_httpc_target_t *t, int allow_tls, const char **why);
/* Main thread, before the workers run: an https target's TLS context, which verifies the peer's certificate chain (the
 * system's CAs, and ca_file's when not NULL) and that it names the target's host. 0, or -1 with *why. */
int rt_httpc_target_tls(const rt_httpc_target_t *t, const char *ca_file, const char **why);
void rt_httpc_tls_free(void);
void rt_httpc_target_free(rt_httpc_target_t *t);
/* Worker thread: POSTs body (JSON) with extra header lines (each ending in \r\n, or NULL); done runs later on this
 * thread, exactly once, unless the call is cancelled first. The whole call is bounded by timeout_ms. */
rt_httpc_call_t *rt_httpc_post(rt_worker_t *w, const rt_httpc_target_t *t, rt_str_t body, const char *headers,
                               uint64_t timeout_ms, rt_httpc_done_t done, void *arg);
/* Drops a call whose answer nobody waits for any more; done is not called. */
void rt_httpc_cancel(rt_httpc_call_t *c);

#endif
