/* `listen` entries read from YAML nodes (config.c's helper): an address, or {address, tls: {cert, key}}. */
#ifndef RT_CONFIG_LISTEN_H
#define RT_CONFIG_LISTEN_H

#include <stdarg.h>
#include <yaml.h>

#include "config.h"

/* One entry or a sequence of them into items and tls (count of each; the caller frees them with
 * rt_listen_entries_free, also after an error). origin: "file" (errors give file and line) or the variable. */
int rt_listen_entries(yaml_document_t *doc, yaml_node_t *n, const char *origin, const char *file, char ***items,
                      rt_listen_tls_t ***tls, size_t *count, char *err, size_t errlen);
void rt_listen_entries_free(char **items, rt_listen_tls_t **tls, size_t n);
void rt_listen_tls_free(rt_listen_tls_t *t);
/* "config: listen[1].tls.cert: MSG (FILE line N)", or "config: listen[1].tls.cert (RTB_LISTEN): MSG" */
void rt_listen_verr(char *err, size_t errlen, size_t i, const char *field, const char *origin, const char *file, int line,
                    const char *fmt, va_list ap);

#endif
