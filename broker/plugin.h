/* Transport plugins: loading, ABI checks, configuration sections, negotiation on /sub. */
#ifndef RT_PLUGIN_LOADER_H
#define RT_PLUGIN_LOADER_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

#include <stdio.h>

#include "rt.h"

/* Loads plugins.load from plugins.dir (default: <exe dir>/plugins); 0 or -1 with err naming the file. */
int rt_plugins_load(const char *exe_path, char *err, size_t errlen);
int rt_plugins_init(char *err, size_t errlen);
/* --list-plugins: every .so in plugins.dir, loadable or not (with the reason), and what each claims. */
int rt_plugins_list(const char *exe_path, FILE *out);
void rt_plugins_fini(void);
size_t rt_plugins_count(void);
const rt_transport_t *rt_plugin_at(size_t i);
/* The plugin for a /sub request (highest claim), or NULL. */
const rt_transport_t *rt_plugins_negotiate(h2o_req_t *req);
/* The plugin serving an explicit path ("/sse"), or NULL. */
const rt_transport_t *rt_plugins_by_path(rt_str_t path);
/* The plugin's optional rt_transport_v1_flags (RT_TRANSPORT_*), 0 when it exports none. */
uint32_t rt_plugin_flags(const rt_transport_t *tp);
extern const rt_services_t rt_services;

#endif
