/*
 * The plugin loader and the services table plugins call back into. Plugins are
 * dlopen'ed by name from plugins.dir, must export `rt_transport_v1` with our ABI
 * version, and declare their config keys, which the config loader checks like ours.
 * Every refusal names the file and the reason.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "hub.h"
#include "http.h"
#include "message.h"
#include "ops.h"
#include "presence.h"
#include "plugin.h"
#include "proxy.h"
#include "publish.h"
#include "text.h"

#define MAX_PLUGINS 16

static const rt_transport_t *plugins[MAX_PLUGINS];
static void *handles[MAX_PLUGINS];
static int slot_base[MAX_PLUGINS];
static uint32_t flags[MAX_PLUGINS]; /* rt_transport_v1_flags, 0 when not exported */
static size_t nplugins;

uint32_t rt_plugin_flags(const rt_transport_t *tp)
{
    for (size_t i = 0; i < nplugins; i++)
        if (plugins[i] == tp)
            return flags[i];
    return 0;
}

size_t rt_plugins_count(void) { return nplugins; }
const rt_transport_t *rt_plugin_at(size_t i) { return plugins[i]; }

static void plugins_dir(const char *exe_path, char *out, size_t outlen)
{
    const char *dir = rt_cfg_str("plugins.dir");
    if (dir[0]) {
        snprintf(out, outlen, "%s", dir);
        return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0)
        exe[n] = '\0';
    else
        snprintf(exe, sizeof(exe), "%s", exe_path);
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(exe, ".");
    if (strlen(exe) + sizeof("/plugins") > outlen)
        strcpy(exe, ".");
    memcpy(out, exe, strlen(exe));
    memcpy(out + strlen(exe), "/plugins", sizeof("/plugins"));
}

/* The file a plugins.load entry names: a path as given, else NAME.so in dir. */
static void resolve_file(const char *dir, const char *name, char *out, size_t outlen)
{
    if (strchr(name, '/'))
        snprintf(out, outlen, "%s", name);
    else
        snprintf(out, outlen, "%s/%s.so", dir, name);
}

/* An explicit path must not take a core endpoint or everything. */
static const char *bad_path(const rt_transport_t *tp)
{
    static const char *const core[] = {"/pub", "/sub", "/history", "/presence", "/healthz", "/readyz", "/metrics", NULL};
    for (const char *const *p = tp->paths; p && *p; p++) {
        if ((*p)[0] != '/' || (*p)[1] == '\0')
            return "an explicit path must start with '/' and name something (not \"\" or \"/\")";
        for (const char *const *c = core; *c; c++)
            if (strcmp(*p, *c) == 0)
                return "an explicit path takes a core endpoint (/pub, /sub, /history, /presence, /healthz, /readyz, /metrics)";
    }
    return NULL;
}

/* Opens a plugin file and checks its table; NULL with err naming the file and the reason. */
static const rt_transport_t *open_plugin(const char *file, void **handle, char *err, size_t errlen)
{
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "plugin %s: cannot be loaded: %s", file, dlerror());
        return NULL;
    }
    const rt_transport_t *tp = dlsym(h, "rt_transport_v1");
    const char *why = NULL;
    char buf[160];
    if (tp == NULL)
        why = "does not export the symbol rt_transport_v1 (not an rtbroker transport plugin?)";
    else if (tp->abi_version != RT_PLUGIN_ABI_VERSION)
        snprintf(buf, sizeof(buf), "built for plugin ABI version %u, this broker speaks version %d; rebuild it against its "
                                   "include/rtbroker/plugin.h", tp->abi_version, RT_PLUGIN_ABI_VERSION), why = buf;
    else if (tp->name == NULL || tp->start == NULL || tp->deliver == NULL || tp->gap == NULL || tp->end == NULL ||
             tp->release == NULL || tp->claims == NULL)
        why = "its rt_transport_v1 table lacks a required field (name, claims, start, deliver, gap, end, release)";
    else if (tp->cache_slots < 0 || tp->cache_slots > 4)
        why = "cache_slots must be 0 to 4";
    else
        why = bad_path(tp);
    if (why) {
        snprintf(err, errlen, "plugin %s: %s", file, why);
        dlclose(h);
        return NULL;
    }
    *handle = h;
    return tp;
}

int rt_plugins_list(const char *exe_path, FILE *out)
{
    char dir[PATH_MAX], file[PATH_MAX + 300], err[512];
    plugins_dir(exe_path, dir, sizeof(dir));
    const rt_cfg_value_t *load = rt_cfg("plugins.load");
    fprintf(out, "plugins in %s (plugins.load:", dir);
    for (size_t i = 0; i < load->nlist; i++)
        fprintf(out, " %s", load->list[i]);
    fprintf(out, ")\n");
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(out, "  cannot read %s: %s\n", dir, strerror(errno));
        return 1;
    }
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
            continue;
        snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
        void *h;
        const rt_transport_t *tp = open_plugin(file, &h, err, sizeof(err));
        n++;
        if (tp == NULL) {
            fprintf(out, "  %-12s refused: %s\n", e->d_name, err);
            continue;
        }
        int loaded = 0;
        char want[PATH_MAX + 300], a[PATH_MAX], b[PATH_MAX];
        for (size_t i = 0; i < load->nlist; i++) {
            resolve_file(dir, load->list[i], want, sizeof(want));
            loaded |= realpath(want, a) && realpath(file, b) && strcmp(a, b) == 0;
        }
        fprintf(out, "  %-12s %s, ABI %u, %s\n      claims: /sub/... by negotiation (its claims());", tp->name, e->d_name,
                tp->abi_version, loaded ? "loaded by plugins.load" : "not in plugins.load");
        for (const char *const *p = tp->paths; p && *p; p++)
            fprintf(out, " %s", *p);
        fprintf(out, "\n      config:");
        for (const rt_cfg_key_t *k = tp->config; k && k->name; k++)
            fprintf(out, " %s.%s=%s", tp->name, k->name, k->default_value);
        fprintf(out, "%s\n", tp->config && tp->config->name ? "" : " (none)");
        dlclose(h);
    }
    closedir(d);
    if (n == 0)
        fprintf(out, "  (no .so files)\n");
    return 0;
}

int rt_plugins_load(const char *exe_path, char *err, size_t errlen)
{
    const rt_cfg_value_t *load;
    char dir[PATH_MAX], file[PATH_MAX + 64];
    plugins_dir(exe_path, dir, sizeof(dir));
    int next_slot = 1; /* slot 0 is the core's JSON envelope */
    /* registering a plugin's keys may move the config's values: read the list afresh each time */
    for (size_t i = 0; (load = rt_cfg("plugins.load")) != NULL && i < load->nlist; i++) {
        const char *name = load->list[i];
        resolve_file(dir, name, file, sizeof(file));
        if (nplugins == MAX_PLUGINS) {
            snprintf(err, errlen, "plugin %s: at most %d plugins can be loaded", file, MAX_PLUGINS);
            return -1;
        }
        if (access(file, R_OK) != 0) {
            snprintf(err, errlen, "plugin %s: no such file (plugins.load names \"%s\"; plugins.dir is %s)", file, name, dir);
            return -1;
        }
        void *h;
        const rt_transport_t *tp = open_plugin(file, &h, err, errlen);
        if (tp == NULL)
            return -1;
        /* plugins.<name>.enabled: false skips it (and its keys are not errors) */
        char section[128], enabled[160];
        snprintf(section, sizeof(section), "plugins.%s", tp->name);
        snprintf(enabled, sizeof(enabled), "%s.enabled", section);
        static const rt_cfg_key_t enabled_key[] = {{"enabled", RT_CFG_BOOL, "true", 0, 0}, {NULL, 0, NULL, 0, 0}};
        if (rt_config_add_section(section, enabled_key, err, errlen) != 0) {
            dlclose(h);
            return -1;
        }
        if (!rt_cfg_int(enabled)) {
            rt_log(RT_LOG_INFO, "plugin %s: disabled by %s", tp->name, enabled);
            rt_config_ignore_section(section);
            rt_config_ignore_section(tp->name);
            dlclose(h);
            continue;
        }
        for (size_t k = 0; k < nplugins; k++) {
            if (strcmp(plugins[k]->name, tp->name) == 0) {
                snprintf(err, errlen, "plugin %s: a plugin named \"%s\" is already loaded", file, tp->name);
                dlclose(h);
                return -1;
            }
            for (const char *const *p = tp->paths; p && *p; p++)
                for (const char *const *q = plugins[k]->paths; q && *q; q++)
                    if (strcmp(*p, *q) == 0) {
                        snprintf(err, errlen, "plugin %s: path %s is already claimed by plugin \"%s\"", file, *p,
                                 plugins[k]->name);
                        dlclose(h);
                        return -1;
                    }
        }
        if (next_slot + tp->cache_slots > RT_MSG_CACHE_SLOTS) {
            snprintf(err, errlen, "plugin %s: no message cache slots left", file);
            dlclose(h);
            return -1;
        }
        if (rt_config_add_section(tp->name, tp->config, err, errlen) != 0) {
            dlclose(h);
            return -1;
        }
        slot_base[nplugins] = next_slot;
        next_slot += tp->cache_slots;
        handles[nplugins] = h;
        const uint32_t *f = dlsym(h, "rt_transport_v1_flags");
        flags[nplugins] = f ? *f : 0;
        plugins[nplugins++] = tp;
        rt_metrics_register_transport(tp);
    }
    return 0;
}

int rt_plugins_init(char *err, size_t errlen)
{
    for (size_t i = 0; i < nplugins; i++) {
        if (plugins[i]->init && plugins[i]->init(&rt_services) != 0) {
            snprintf(err, errlen, "plugin %s: refused to start (see its log lines above)", plugins[i]->name);
            return -1;
        }
    }
    return 0;
}

void rt_plugins_fini(void)
{
    for (size_t i = 0; i < nplugins; i++)
        if (plugins[i]->fini)
            plugins[i]->fini();
}

const rt_transport_t *rt_plugins_negotiate(h2o_req_t *req)
{
    const rt_transport_t *best = NULL;
    int best_prio = 0;
    for (size_t i = 0; i < nplugins; i++) {
        int p = plugins[i]->claims((rt_request_t *)req);
        if (p > best_prio)
            best = plugins[i], best_prio = p;
    }
    return best;
}

const rt_transport_t *rt_plugins_by_path(rt_str_t path)
{
    for (size_t i = 0; i < nplugins; i++)
        for (const char *const *p = plugins[i]->paths; p && *p; p++) {
            size_t n = strlen(*p);
            if (path.len >= n && memcmp(path.base, *p, n) == 0 && (path.len == n || path.base[n] == '/'))
                return plugins[i];
        }
    return NULL;
}

/* ---------- the services table ---------- */

static int64_t svc_cfg_int(const char *section, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s.%s", section, name);
    return rt_cfg_int(path);
}

static rt_str_t svc_cfg_string(const char *section, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "%s.%s", section, name);
    return rt_cstr(rt_cfg_str(path));
}

static void svc_log(int level, const char *plugin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rt_vlog(level, plugin, fmt, ap);
    va_end(ap);
}

static rt_str_t svc_req_method(rt_request_t *r)
{
    h2o_req_t *req = (h2o_req_t *)r;
    return rt_str(req->method.base, req->method.len);
}

static rt_str_t svc_req_path(rt_request_t *r) { return rt_req_path((h2o_req_t *)r); }
static rt_str_t svc_req_header(rt_request_t *r, const char *name) { return rt_req_header((h2o_req_t *)r, name); }
static int svc_req_query(rt_request_t *r, const char *name, size_t nth, rt_str_t *out)
{
    return rt_req_query((h2o_req_t *)r, name, nth, out);
}
static int svc_req_topics(rt_request_t *r, rt_str_t *out, size_t max) { return rt_req_topics((h2o_req_t *)r, out, max); }
static rt_str_t svc_req_since(rt_request_t *r) { return rt_req_since((h2o_req_t *)r); }
static const char *default_message(int err)
{
    switch (err) {
    case RT_ETOPIC:
        return "give topics as /sub/{topic} or ?topic=A&topic=B; a topic is segments of [A-Za-z0-9_-] joined by '.', "
               "with '*' for one segment or a last '>'";
    case RT_ETOOMANY: return "too many topics in one subscription (limits.max_topics)";
    case RT_EID: return "Last-Event-ID / lastEventId / since / cursor must be an id EPOCH:SEQ given by this broker";
    case RT_EUNAUTHORIZED: return "a token allowing subscribe to this topic is required";
    case RT_EFORBIDDEN: return "the token does not allow subscribing to this topic";
    case RT_ERATELIMIT: return "too many requests; retry later";
    case RT_EUNAVAILABLE: return "the bus is not available; retry later";
    default: return rt_strerror(err);
    }
}

static void svc_respond_error(rt_request_t *r, int err, const char *message)
{
    rt_http_error((h2o_req_t *)r, err, message ? message : default_message(err));
}
static void svc_respond(rt_request_t *r, int status, const char *ctype, const char *body, size_t len)
{
    h2o_req_t *req = (h2o_req_t *)r;
    char *copy = h2o_mem_alloc_pool(&req->pool, len + 1);
    memcpy(copy, body, len);
    rt_http_respond(req, status, ctype, copy, len);
}

static rt_str_t svc_req_body(rt_request_t *r)
{
    h2o_req_t *req = (h2o_req_t *)r;
    return rt_str(req->entity.base, req->entity.base ? req->entity.len : 0);
}

static void svc_msg_view(rt_msg_t *m, rt_msg_view_t *out)
{
    out->id = m->id;
    out->topic = m->topic;
    out->event = m->event;
    out->content_type = m->content_type;
    out->data = m->data;
    out->seq = m->seq;
    out->flags = m->flags;
}

static rt_msg_t *svc_msg_ref(rt_msg_t *m) { return rt_msg_ref(m); }

typedef struct {
    rt_str_t (*encode)(rt_msg_t *msg, int slot);
    int slot;
} enc_arg_t;

/* While a plugin encodes a variant, the envelope it builds on (SSE envelope=1, rt.v1, ndjson) is made for that
 * once and not cached: only the variant is kept, not the variant and a six-fold escaped copy of the payload too. */
static __thread rt_msg_t *encoding_msg;
static __thread rt_enc_t *scratch_envelope;

static rt_str_t svc_msg_envelope(rt_msg_t *m)
{
    if (m != encoding_msg || (scratch_envelope == NULL && (scratch_envelope = rt_msg_envelope_new(m)) == NULL))
        return rt_msg_envelope(m);
    return rt_str(scratch_envelope->bytes, scratch_envelope->len);
}

static rt_enc_t *encode_trampoline(rt_msg_t *m, void *arg)
{
    enc_arg_t *a = arg;
    encoding_msg = m;
    rt_str_t s = a->encode(m, a->slot);
    encoding_msg = NULL;
    free(scratch_envelope);
    scratch_envelope = NULL;
    /* plugins hand back malloc'd bytes; the cache keeps its own header + bytes */
    rt_enc_t *e = rt_enc_new(s.base, s.len);
    free((void *)s.base);
    return e;
}

static rt_str_t svc_msg_encoded(rt_msg_t *msg, const rt_transport_t *tp, int slot, rt_str_t (*encode)(rt_msg_t *, int))
{
    size_t i = 0;
    while (i < nplugins && plugins[i] != tp)
        i++;
    if (i == nplugins || slot < 0 || slot >= tp->cache_slots)
        return rt_str(NULL, 0);
    enc_arg_t a = {encode, slot};
    return rt_msg_cached(msg, slot_base[i] + slot, encode_trampoline, &a);
}

const rt_services_t rt_services = {
    RT_PLUGIN_ABI_VERSION,
    svc_cfg_int,
    svc_cfg_string,
    rt_strerror,
    svc_log,
    svc_req_method,
    svc_req_path,
    svc_req_header,
    svc_req_query,
    svc_req_topics,
    svc_req_since,
    svc_respond_error,
    svc_respond,
    rt_sub_open,
    rt_sub_data,
    rt_sub_request,
    rt_sub_subscribe,
    rt_sub_cursor,
    rt_sub_stream_start,
    rt_sub_write_ref,
    rt_sub_write_copy,
    rt_sub_close,
    rt_sub_respond,
    rt_sub_timer,
    rt_sub_upgrade,
    rt_sub_unsubscribe,
    rt_publish_from_sub,
    rt_sub_authenticate,
    rt_sub_auth_state,
    svc_msg_view,
    svc_msg_ref,
    rt_msg_unref,
    svc_msg_envelope,
    svc_msg_encoded,
    rt_metrics_delivered,
    rt_utf8_valid,
    rt_json_object,
    rt_json_unescape,
    rt_sub_presence_join,
    rt_sub_presence_request,
    rt_sub_presence_snapshot,
    rt_sub_client,
    rt_sub_client_key,
    svc_req_body,
    rt_sub_hold_answer,
    rt_presence_mac,
    rt_proxy_subscribe_ask,
};
