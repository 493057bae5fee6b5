/*
 * rtbroker's entry point: command line, configuration, plugins, bus, workers, and the
 * signal loop (SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the configuration's limits,
 * allowed origins and JWT keys). Signals are blocked in every thread and taken here with sigwait, so no
 * handler ever runs inside h2o.
 */
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "bus.h"
#include "config.h"
#include "hub.h"
#include "jwtauth.h"
#include "namespace.h"
#include "plugin.h"
#include "presence.h"
#include "proxy.h"
#include "server.h"
#include "tls.h"
#include "token.h"
#include "webhook.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: rtbroker [-c FILE] [--listen ADDR] [--workers N] [--check-config] [--list-plugins] [--version] [--help]\n"
                 "       rtbroker token [-c FILE] [--sub USER] [--rt JSON] [--ttl DURATION]   (a test JWT; token --help)\n"
                 "\n"
                 "  -c, --config FILE   YAML configuration (default: conf/rtbroker.yaml in the working directory, else the\n"
                 "                      one make install put in PREFIX/share/rtbroker/conf/)\n"
                 "  --listen ADDR       listen address, e.g. 127.0.0.1:8080 (overrides `listen`)\n"
                 "  --workers N         worker threads (0 = one per core; overrides `workers`)\n"
                 "  --check-config      load and check the configuration and plugins, then exit\n"
                 "  --list-plugins      list the plugins in plugins.dir, what each claims, and why one cannot load\n"
                 "  --version           print the version and exit\n"
                 "\n"
                 "Every configuration key can also be set with an environment variable:\n"
                 "RTB_ + the key in upper case with dots as underscores (RTB_LISTEN, RTB_HISTORY_MAX_MESSAGES).\n");
}

static int set_log_level(char *err, size_t errlen)
{
    static const char *levels[] = {"error", "warn", "info", "debug"};
    const char *l = rt_cfg_str("log.level");
    for (int i = 0; i < 4; i++)
        if (strcmp(l, levels[i]) == 0) {
            rt_log_level = i;
            return 0;
        }
    snprintf(err, errlen, "config: log.level: \"%s\" is not one of error, warn, info, debug", l);
    return -1;
}

/* SIGHUP: the configuration file again (what can change while running: limits, allowed origins) and the JWT keys.
 * Any error keeps everything as it was. */
static void reload(const char *config)
{
    char err[1024];
    if (rt_config_reload_begin(config, err, sizeof(err)) != 0 || rt_auth_reload_check(err, sizeof(err)) != 0 ||
        rt_jwt_reload(err, sizeof(err)) != 0) {
        rt_config_reload_end(0);
        rt_log(RT_LOG_ERROR, "SIGHUP: %s; keeping the configuration and keys in use", err);
        return;
    }
    rt_auth_reload_apply();
    rt_config_reload_end(1);
    rt_log(RT_LOG_INFO,
           "SIGHUP: reloaded %s and the JWT keys (limits.max_connections %zu, limits.max_queue_bytes %zu, "
           "limits.connections_per_ip %.0f, limits.publish_per_connection %.0f, limits.publish_per_subject %.0f); "
           "open connections are kept",
           config ? config : "the built-in defaults", (size_t)rt_lim.max_connections, (size_t)rt_lim.max_queue_bytes,
           (double)rt_lim.connections_per_ip, (double)rt_lim.publish_per_connection, (double)rt_lim.publish_per_subject);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder of the running binary (resolved through symlinks such as PREFIX/bin/rtbroker), or "". */
static void exe_dir(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    out[0] = '\0';
    if (n > 0) {
        exe[n] = '\0';
        snprintf(out, len, "%s", dirname(exe));
    }
}

/* No -c: conf/rtbroker.yaml in the working directory, else the one make install put beside the binary
 * (PREFIX/lib/rtbroker/rtbroker -> PREFIX/share/rtbroker/conf/rtbroker.yaml), else none (built-in defaults). */
static const char *default_config(char *buf, size_t len)
{
    if (access("conf/rtbroker.yaml", R_OK) == 0)
        return "conf/rtbroker.yaml";
    char dir[PATH_MAX], path[PATH_MAX + 64];
    exe_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/../../share/rtbroker/conf/rtbroker.yaml", dir);
    char *real = dir[0] ? realpath(path, NULL) : NULL;
    if (real == NULL || access(real, R_OK) != 0) {
        free(real);
        return NULL;
    }
    snprintf(buf, len, "%s", real);
    free(real);
    return buf;
}

/* Says which configuration and web root are in use, so that a broker started from another folder does not
 * silently serve nothing: a relative web.root missing from the working directory is looked for beside the
 * configuration's folder (make install puts web/ next to conf/). */
static int settle_web_root(const char *config, char *err, size_t errlen)
{
    const char *root = rt_cfg_str("web.root");
    char cwd[PATH_MAX], cand[PATH_MAX * 2 + 8];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        snprintf(cwd, sizeof(cwd), ".");
    if (config == NULL) {
        char dir[PATH_MAX];
        exe_dir(dir, sizeof(dir));
        snprintf(cand, sizeof(cand), "%s/../conf/rtbroker.yaml", dir);
        char *local = realpath(cand, NULL); /* a checkout's build/rtbroker */
        rt_log(RT_LOG_WARN,
               "no configuration file (none given with -c, no conf/rtbroker.yaml in %s): running on the built-in defaults "
               "and RTB_* variables, where nothing is anonymous%s%s",
               cwd, local ? "; the checkout's open local default is -c " : "", local ? local : "");
        free(local);
    }
    if (root[0] == '\0' || is_dir(root))
        return 0;
    if (root[0] != '/' && config != NULL) {
        char *c = strdup(config);
        snprintf(cand, sizeof(cand), "%s/../%s", dirname(c), root);
        free(c);
        char *real = realpath(cand, NULL);
        if (real != NULL && is_dir(real)) {
            rt_log(RT_LOG_INFO, "web.root \"%s\" is not in %s: serving %s, beside the configuration's folder", root, cwd, real);
            int r = rt_config_override("web.root", real, err, errlen);
            free(real);
            return r;
        }
        free(real);
    }
    rt_log(RT_LOG_WARN, "web.root \"%s\" is not a folder%s%s: static files (the demo, realtime.js) answer 404; set web.root "
                        "(or RTB_WEB_ROOT) to an absolute path, or \"\" to serve none",
           root, root[0] == '/' ? "" : " in the working directory ", root[0] == '/' ? "" : cwd);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {"listen", required_argument, NULL, 'l'},
                                         {"workers", required_argument, NULL, 'w'}, {"check-config", no_argument, NULL, 'k'},
                                         {"version", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
                                         {"list-plugins", no_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *listen = NULL, *workers = NULL;
    int check = 0, list = 0, c;
    char found[PATH_MAX];
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return rt_token_main(argc - 1, argv + 1, default_config(found, sizeof(found)));
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'l': listen = optarg; break;
        case 'w': workers = optarg; break;
        case 'k': check = 1; break;
        case 'p': list = 1; break;
        case 'v': printf("rtbroker %s (plugin ABI %d)\n", RT_VERSION, RT_PLUGIN_ABI_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rtbroker: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (config == NULL)
        config = default_config(found, sizeof(found));

    char err[1024];
    if (list) {
        if (rt_config_load(config, err, sizeof(err)) != 0) {
            fprintf(stderr, "rtbroker: %s\n", err);
            return 2;
        }
        return rt_plugins_list(argv[0], stdout);
    }
    if (rt_config_load(config, err, sizeof(err)) != 0 ||
        (listen && rt_config_override("listen", listen, err, sizeof(err)) != 0) ||
        (workers && rt_config_override("workers", workers, err, sizeof(err)) != 0) || set_log_level(err, sizeof(err)) != 0 ||
        settle_web_root(config, err, sizeof(err)) != 0 ||
        rt_plugins_load(argv[0], err, sizeof(err)) != 0 || rt_config_check_unknown(err, sizeof(err)) != 0 ||
        rt_auth_init(err, sizeof(err)) != 0 || rt_tls_init(err, sizeof(err)) != 0 || rt_presence_init(err, sizeof(err)) != 0 ||
        rt_proxy_init(err, sizeof(err)) != 0 || rt_api_init(err, sizeof(err)) != 0 ||
        rt_webhook_init(err, sizeof(err)) != 0) {
        fprintf(stderr, "rtbroker: %s\n", err);
        return 2;
    }
    rt_ns_apply();
    const char *busname = rt_cfg_str("bus");
    if (strcmp(busname, "memory") == 0) {
        rt_bus = rt_bus_memory_new();
    } else if (strcmp(busname, "nats") == 0) {
        rt_bus = rt_bus_nats_new();
    } else {
        fprintf(stderr, "rtbroker: config: bus: \"%s\" is not one of memory, nats\n", busname);
        return 2;
    }
    if (check) {
        printf("rtbroker: configuration OK (%s)\n", config ? config : "built-in defaults");
        return 0;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* every connection is a file descriptor: take all the process may have */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rt_log(RT_LOG_WARN, "cannot raise the open file limit to %llu", (unsigned long long)rl.rlim_max);
    }
    rt_config_freeze(); /* after the file limit is raised: limits.max_connections 0 is derived from it */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 100000 && rt_cfg_int("limits.max_connections") == 0)
        rt_log(RT_LOG_INFO, "open file limit %llu: limits.max_connections is %zu (raise ulimit -Hn for more)",
               (unsigned long long)rl.rlim_cur, rt_lim.max_connections);
    size_t nworkers = rt_config_workers(rt_cfg_int("workers"));
    if (rt_bus->ops->start(rt_bus, err, sizeof(err)) != 0 || rt_plugins_init(err, sizeof(err)) != 0 ||
        rt_server_init(nworkers, err, sizeof(err)) != 0 || rt_api_cluster_start(err, sizeof(err)) != 0) {
        fprintf(stderr, "rtbroker: %s\n", err);
        return 1;
    }
    rt_server_start();
    if (rt_webhook_start(err, sizeof(err)) != 0) {
        fprintf(stderr, "rtbroker: %s\n", err);
        return 1;
    }

    const rt_cfg_value_t *l = rt_cfg("listen");
    rt_buf_t b = {0};
    for (size_t i = 0; i < l->nlist; i++)
        rt_buf_printf(&b, "%s%s://%s", i ? ", " : "", rt_tls_ctx(i) ? "https" : "http", l->list[i]);
    rt_buf_appendc(&b, " (transports:");
    for (size_t i = 0; i < rt_plugins_count(); i++)
        rt_buf_printf(&b, " %s", rt_plugin_at(i)->name);
    rt_buf_printf(&b, "; bus %s; %zu workers; config %s; web root %s)", busname, nworkers, config ? config : "built-in defaults",
                  rt_cfg_str("web.root")[0] ? rt_cfg_str("web.root") : "none");
    rt_log(RT_LOG_INFO, "rtbroker %s listening on %.*s", RT_VERSION, (int)b.len, b.base);
    rt_buf_free(&b);
    if (rt_auth_anonymous_open()) {
        for (size_t i = 0; i < l->nlist; i++) {
            rt_listen_addr_t a;
            if (rt_parse_addr(l->list[i], &a) == 0 && !a.loopback)
                rt_log(RT_LOG_WARN, "listener %s is not loopback and auth.anonymous lets anyone subscribe or publish "
                                    "without a token; restrict auth.anonymous.* before exposing it",
                       l->list[i]);
        }
    }

    for (;;) {
        int sig = 0;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            reload(config);
            rt_tls_reload();
            continue;
        }
        rt_log(RT_LOG_INFO, "%s: draining (at most %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               (long long)rt_cfg_int("shutdown.drain"));
        break;
    }
    rt_api_cluster_stop(); /* while the workers still run: calls in progress end by their timers */
    rt_server_shutdown();
    rt_webhook_stop();
    rt_plugins_fini();
    rt_bus->ops->stop(rt_bus);
    rt_log(RT_LOG_INFO, "stopped");
    return 0;
}
