/* Unit tests for the configuration loader (broker/config.h): defaults, file values, env overrides,
 * error messages that name the key and the line or the variable, durations, sizes, addresses. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "jwtauth.h"
#include "unit.h"

extern char **environ;

static char err[1024];

static int write_file(char *path, size_t pathlen, const char *text)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, pathlen, "%s/rtb_test_config_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    return ok ? 0 : -1;
}

/* Resets, then loads yaml from a temp file; err gets the message. */
static int load(const char *yaml)
{
    char path[256];
    err[0] = '\0';
    rt_config_reset();
    if (write_file(path, sizeof(path), yaml) != 0) {
        snprintf(err, sizeof(err), "cannot write a temp file");
        return -99;
    }
    int rc = rt_config_load(path, err, sizeof(err));
    unlink(path);
    return rc;
}
static int load_defaults(void)
{
    err[0] = '\0';
    rt_config_reset();
    return rt_config_load(NULL, err, sizeof(err));
}
static int unknown(void)
{
    err[0] = '\0';
    return rt_config_check_unknown(err, sizeof(err));
}

static int err_has(const char *part)
{
    int ok = strstr(err, part) != NULL;
    if (!ok)
        printf("  error \"%s\" lacks \"%s\"\n", err, part);
    return ok;
}

static int64_t I(const char *key) { return rt_cfg_int(key); }
static const char *origin(const char *key)
{
    const rt_cfg_value_t *v = rt_cfg(key);
    return v && v->origin ? v->origin : "";
}
static int list_is(const char *key, const char *const *want)
{
    const rt_cfg_value_t *v = rt_cfg(key);
    size_t n = 0;
    while (want[n])
        n++;
    int ok = v && v->nlist == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = strcmp(v->list[i], want[i]) == 0;
    if (!ok && v) {
        printf("  %s has %zu:", key, v->nlist);
        for (size_t i = 0; i < v->nlist; i++)
            printf(" [%s]", v->list[i]);
        printf("\n");
    }
    return ok;
}
static int list_has(const char *key, const char *item)
{
    const rt_cfg_value_t *v = rt_cfg(key);
    for (size_t i = 0; v && i < v->nlist; i++)
        if (strcmp(v->list[i], item) == 0)
            return 1;
    return 0;
}
#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
#define L0 ((const char *const[]){NULL})

/* No RTB_* variable from the environment may leak into these tests. */
static void clear_rtb_env(void)
{
    for (;;) {
        char name[256] = "";
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "RTB_", 4) == 0) {
                const char *eq = strchr(*e, '=');
                size_t n = eq ? (size_t)(eq - *e) : strlen(*e);
                if (n >= sizeof(name))
                    n = sizeof(name) - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                break;
            }
        }
        if (!name[0])
            return;
        unsetenv(name);
    }
}

static void test_defaults(void)
{
    CASE("defaults without a file");
    CHECK(load_defaults() == 0);
    CHECK(I("history.max_messages") == 100);
    CHECK(strcmp(origin("history.max_messages"), "default") == 0);
    CHECK(I("history.max_age") == 3600000);
    CHECK(I("publish.dedup_window") == 120000);
    CHECK(I("limits.max_message_bytes") == 65536);
    CHECK(I("limits.max_queue_bytes") == 1048576);
    CHECK(I("limits.max_topics") == 32);
    CHECK(I("shutdown.drain") == 10000);
    CHECK(I("workers") == 0);
    CHECK(list_is("listen", L("127.0.0.1:8080")));
    CHECK(list_has("plugins.load", "sse") && list_has("plugins.load", "longpoll")); /* the set may grow */
    CHECK(list_is("auth.anonymous.subscribe", L0));
    CHECK(list_is("auth.anonymous.publish", L0));
    CHECK(strcmp(rt_cfg_str("bus"), "memory") == 0);
    CHECK(strcmp(rt_cfg_str("auth.cookie"), "rt_token") == 0);
    CHECK(strcmp(rt_cfg_str("log.level"), "info") == 0);
    CHECK(unknown() == 0);

    CASE("unknown keys read as absent");
    CHECK(rt_cfg("no.such.key") == NULL);
    CHECK(rt_cfg_int("no.such.key") == 0);
    CHECK(strcmp(rt_cfg_str("no.such.key"), "") == 0);

    CASE("an empty file or a comments-only file means defaults");
    CHECK(load("") == 0);
    CHECK(I("history.max_messages") == 100);
    CHECK(unknown() == 0);
    CHECK(load("# nothing here\n\n# at all\n") == 0);
    CHECK(I("limits.max_message_bytes") == 65536);
    CHECK(unknown() == 0);

    CASE("reset forgets a loaded file");
    CHECK(load("history:\n  max_messages: 7\n") == 0);
    CHECK(I("history.max_messages") == 7);
    rt_config_reset();
    CHECK(rt_cfg("history.max_messages") == NULL);
    CHECK(load_defaults() == 0);
    CHECK(I("history.max_messages") == 100);
}

static void test_file_values(void)
{
    CASE("values from a file, with origin and line");
    const char *yaml = "# comment\n"
                       "listen: \"0.0.0.0:9090\"\n"
                       "workers: 4\n"
                       "history:\n"
                       "  max_messages: 7\n"
                       "  max_age: 2m\n"
                       "limits:\n"
                       "  max_message_bytes: 64KiB\n"
                       "  max_queue_bytes: 1MiB\n"
                       "publish: {dedup_window: 30s}\n"
                       "auth:\n"
                       "  anonymous:\n"
                       "    subscribe: [\"public.>\", \"news.*\"]\n";
    CHECK(load(yaml) == 0);
    CHECK(list_is("listen", L("0.0.0.0:9090")));
    CHECK(I("workers") == 4);
    CHECK(I("history.max_messages") == 7);
    CHECK(strcmp(origin("history.max_messages"), "file") == 0);
    CHECK(rt_cfg("history.max_messages") && rt_cfg("history.max_messages")->line == 5);
    CHECK(I("history.max_age") == 120000);
    CHECK(I("limits.max_message_bytes") == 65536);
    CHECK(I("limits.max_queue_bytes") == 1048576);
    CHECK(I("publish.dedup_window") == 30000);
    CHECK(list_is("auth.anonymous.subscribe", L("public.>", "news.*")));
    CHECK(list_is("auth.anonymous.publish", L0));
    CHECK(I("limits.max_topics") == 32); /* untouched keys keep defaults */
    CHECK(strcmp(origin("limits.max_topics"), "default") == 0);
    CHECK(unknown() == 0);

    CASE("range bounds are inclusive");
    CHECK(load("history:\n  max_messages: 1\nlimits:\n  max_topics: 1024\n  max_message_bytes: 64MiB\n") == 0);
    CHECK(I("history.max_messages") == 1);
    CHECK(I("limits.max_topics") == 1024);
    CHECK(I("limits.max_message_bytes") == 64LL << 20);
}

static void test_errors(void)
{
    CASE("bad integer names the key and the line");
    CHECK(load("history:\n  max_messages: abc\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(err_has("line 2"));
    CHECK(err_has("abc"));
    CHECK(load("\n\nhistory:\n  max_age: 1h\n  max_messages: 12x\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(err_has("line 5"));
    CHECK(load("history: {max_messages: 7.5}\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(err_has("line 1"));
    CHECK(load("history:\n  max_messages:\n") != 0); /* null */
    CHECK(err_has("history.max_messages"));
    CHECK(load("workers: many\n") != 0);
    CHECK(err_has("workers"));
    CHECK(err_has("line 1"));

    CASE("bad duration");
    CHECK(load("history:\n  max_age: 10 minutes\n") != 0);
    CHECK(err_has("history.max_age"));
    CHECK(err_has("line 2"));
    CHECK(load("publish:\n  dedup_window: -5s\n") != 0);
    CHECK(err_has("publish.dedup_window"));
    CHECK(load("shutdown:\n  drain: soon\n") != 0);
    CHECK(err_has("shutdown.drain"));
    CHECK(err_has("line 2"));

    CASE("bad size");
    CHECK(load("limits:\n  max_message_bytes: 64 kilobytes\n") != 0);
    CHECK(err_has("limits.max_message_bytes"));
    CHECK(err_has("line 2"));
    CHECK(load("limits:\n  max_queue_bytes: 1.5MiB\n") != 0);
    CHECK(err_has("limits.max_queue_bytes"));
    CHECK(load("limits:\n  max_message_bytes: -1\n") != 0);
    CHECK(err_has("limits.max_message_bytes"));

    CASE("out of range");
    CHECK(load("history:\n  max_messages: 0\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(err_has("line 2"));
    CHECK(load("history:\n  max_messages: 10000001\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(load("limits:\n  max_message_bytes: 65MiB\n") != 0);
    CHECK(err_has("limits.max_message_bytes"));
    CHECK(load("history:\n  max_age: 500ms\n") != 0); /* below 1 s */
    CHECK(err_has("history.max_age"));
    CHECK(load("limits:\n  max_topics: 1025\n") != 0);
    CHECK(err_has("limits.max_topics"));
    CHECK(load("workers: -1\n") != 0);
    CHECK(err_has("workers"));

    CASE("bad listen address names listen");
    CHECK(load("listen: \"8o80\"\n") != 0);
    CHECK(err_has("listen"));
    CHECK(err_has("line 1"));
    CHECK(err_has("8o80"));
    CHECK(load("listen: \"127.0.0.1:0\"\n") != 0);
    CHECK(err_has("listen"));
    CHECK(load("listen: \"127.0.0.1:65536\"\n") != 0);
    CHECK(err_has("listen"));
    CHECK(load("listen: \"not-an-ip:80\"\n") != 0);
    CHECK(err_has("listen"));
    CHECK(load("\nlisten:\n  - \"127.0.0.1:8080\"\n  - \"[::1\"\n") != 0);
    CHECK(err_has("listen"));
    CHECK(load("listen: []\n") != 0);
    CHECK(err_has("listen"));

    CASE("a list where a single value is expected");
    CHECK(load("history:\n  max_messages: [1, 2]\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(err_has("line 2"));

    CASE("YAML-level problems");
    CHECK(load("history: [1, 2\n") != 0);
    CHECK(err_has("line"));
    CHECK(load("- a\n- b\n") != 0);
    CHECK(err_has("mapping"));
    CHECK(load("history:\n  max_messages: 5\n  max_messages: 6\n") != 0);
    CHECK(err_has("history.max_messages"));
    CHECK(err_has("line 3"));
    CHECK(load("plugins:\n  load:\n    - sse\n    - {a: 1}\n") != 0);
    CHECK(err_has("plugins.load"));
    err[0] = '\0';
    rt_config_reset();
    CHECK(rt_config_load("/nonexistent/dir/rtbroker.yaml", err, sizeof(err)) != 0);
    CHECK(err_has("/nonexistent/dir/rtbroker.yaml"));

    CASE("aliases that expand to more keys than any real file are refused");
    static char yaml[20000];
    size_t n = (size_t)snprintf(yaml, sizeof(yaml), "a0: &a0 {x: 1, y: 2}\n");
    for (int i = 1; i <= 14; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "a%d: &a%d {p: *a%d, q: *a%d}\n", i, i, i - 1, i - 1);
    CHECK(load(yaml) != 0);
    CHECK(err_has("more than 1024 keys"));

    CASE("nesting deeper than a key path of 255 bytes is refused, not recursed into");
    n = 0;
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "{a: ");
    n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "1");
    for (int i = 0; i < 2000; i++)
        n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "}");
    CHECK(load(yaml) != 0);
    CHECK(err_has("longer than 255 bytes"));
}

static void test_env(void)
{
    CASE("env overrides the file");
    setenv("RTB_HISTORY_MAX_MESSAGES", "7", 1);
    CHECK(load("history:\n  max_messages: 5\n") == 0);
    CHECK(I("history.max_messages") == 7);
    CHECK(strcmp(origin("history.max_messages"), "RTB_HISTORY_MAX_MESSAGES") == 0);
    CHECK(unknown() == 0); /* the file key was consumed */
    CHECK(load_defaults() == 0);
    CHECK(I("history.max_messages") == 7);
    setenv("RTB_HISTORY_MAX_MESSAGES", " 9 ", 1);
    CHECK(load_defaults() == 0);
    CHECK(I("history.max_messages") == 9);

    CASE("a bad env value names the variable");
    setenv("RTB_HISTORY_MAX_MESSAGES", "abc", 1);
    CHECK(load("history:\n  max_messages: 5\n") != 0);
    CHECK(err_has("RTB_HISTORY_MAX_MESSAGES"));
    CHECK(err_has("history.max_messages"));
    setenv("RTB_HISTORY_MAX_MESSAGES", "0", 1);
    CHECK(load_defaults() != 0);
    CHECK(err_has("RTB_HISTORY_MAX_MESSAGES"));
    unsetenv("RTB_HISTORY_MAX_MESSAGES");
    CHECK(load("history:\n  max_messages: 5\n") == 0);
    CHECK(I("history.max_messages") == 5);

    setenv("RTB_LISTEN", "8o80", 1);
    CHECK(load_defaults() != 0);
    CHECK(err_has("RTB_LISTEN"));
    setenv("RTB_LIMITS_MAX_MESSAGE_BYTES", "lots", 1);
    unsetenv("RTB_LISTEN");
    CHECK(load_defaults() != 0);
    CHECK(err_has("RTB_LIMITS_MAX_MESSAGE_BYTES"));
    setenv("RTB_LIMITS_MAX_MESSAGE_BYTES", "32KiB", 1);
    CHECK(load_defaults() == 0);
    CHECK(I("limits.max_message_bytes") == 32768);
    unsetenv("RTB_LIMITS_MAX_MESSAGE_BYTES");
    setenv("RTB_HISTORY_MAX_AGE", "90m", 1);
    CHECK(load_defaults() == 0);
    CHECK(I("history.max_age") == 90LL * 60000);
    unsetenv("RTB_HISTORY_MAX_AGE");

    CASE("lists: YAML sequences and comma-separated env");
    CHECK(load("plugins:\n  load:\n    - sse\n    - longpoll\n    - ws\n") == 0);
    CHECK(list_is("plugins.load", L("sse", "longpoll", "ws")));
    CHECK(load("plugins:\n  load: [ws]\n") == 0);
    CHECK(list_is("plugins.load", L("ws")));
    CHECK(load("plugins:\n  load: ws\n") == 0); /* a scalar is a one-item list */
    CHECK(list_is("plugins.load", L("ws")));
    CHECK(load("plugins:\n  load: []\n") == 0);
    CHECK(list_is("plugins.load", L0));
    CHECK(load("listen: [\"127.0.0.1:8080\", \"[::1]:8081\", \"9000\"]\n") == 0);
    CHECK(list_is("listen", L("127.0.0.1:8080", "[::1]:8081", "9000")));
    setenv("RTB_PLUGINS_LOAD", "sse, longpoll ,ws", 1);
    CHECK(load("plugins:\n  load: [x]\n") == 0);
    CHECK(list_is("plugins.load", L("sse", "longpoll", "ws")));
    setenv("RTB_PLUGINS_LOAD", "a,,b,", 1);
    CHECK(load_defaults() == 0);
    CHECK(list_is("plugins.load", L("a", "b")));
    setenv("RTB_PLUGINS_LOAD", "", 1);
    CHECK(load_defaults() == 0);
    CHECK(list_is("plugins.load", L0));
    unsetenv("RTB_PLUGINS_LOAD");
    setenv("RTB_AUTH_ANONYMOUS_SUBSCRIBE", "chat.>,news.*", 1);
    CHECK(load_defaults() == 0);
    CHECK(list_is("auth.anonymous.subscribe", L("chat.>", "news.*")));
    unsetenv("RTB_AUTH_ANONYMOUS_SUBSCRIBE");
    setenv("RTB_LISTEN", "127.0.0.1:7000, [::1]:7001", 1);
    CHECK(load_defaults() == 0);
    CHECK(list_is("listen", L("127.0.0.1:7000", "[::1]:7001")));
    unsetenv("RTB_LISTEN");
    CHECK(load_defaults() == 0);
    CHECK(list_is("listen", L("127.0.0.1:8080")));
    CHECK(list_has("plugins.load", "sse") && !list_has("plugins.load", "a"));
}

static void test_unknown(void)
{
    CASE("an unknown key is reported with its line");
    CHECK(load("history:\n  max_messages: 5\n  max_mesages: 6\n") == 0);
    CHECK(unknown() != 0);
    CHECK(err_has("history.max_mesages"));
    CHECK(err_has("line 3"));
    CHECK(load("listen: 8080\nfoo: 1\n") == 0);
    CHECK(unknown() != 0);
    CHECK(err_has("foo"));
    CHECK(err_has("line 2"));
    CHECK(load("limits:\n  max_topics: 5\n  extra:\n    deep: 1\n") == 0);
    CHECK(unknown() != 0);
    CHECK(err_has("config: limits.extra: unknown key"));
    CHECK(err_has("line 3)"));

    CASE("errors found after loading (the JWT keys) name the key and its line or variable");
    unsetenv("RT_TEST_UNSET_SECRET");
    CHECK(load("listen: 8080\nauth:\n  jwt:\n    secret: env:RT_TEST_UNSET_SECRET\n") == 0);
    CHECK(rt_jwt_init(err, sizeof(err)) != 0);
    CHECK(err_has("config: auth.jwt.secret: the environment variable RT_TEST_UNSET_SECRET is not set"));
    CHECK(err_has("line 4)"));
    CHECK(load("auth:\n  jwt:\n    public_key_file: /nonexistent/jwt.pem\n") == 0);
    CHECK(rt_jwt_init(err, sizeof(err)) != 0);
    CHECK(err_has("config: auth.jwt.public_key_file: cannot read /nonexistent/jwt.pem: No such file") && err_has("line 3)"));
    setenv("RTB_AUTH_JWT_PUBLIC_KEY_FILE", "/nonexistent/env.pem", 1);
    CHECK(load("listen: 8080\n") == 0);
    CHECK(rt_jwt_init(err, sizeof(err)) != 0);
    CHECK(err_has("config: auth.jwt.public_key_file (RTB_AUTH_JWT_PUBLIC_KEY_FILE): cannot read /nonexistent/env.pem"));
    unsetenv("RTB_AUTH_JWT_PUBLIC_KEY_FILE");

    CASE("a misspelt section is reported on its own line, not on its first key's");
    CHECK(load("listen: 8080\nhistroy:\n  max_messages: 5\n") == 0);
    CHECK(unknown() != 0);
    CHECK(err_has("config: histroy: unknown key"));
    CHECK(err_has("line 2)"));
    CHECK(load("foo:\n  - a\n") == 0);
    CHECK(unknown() != 0);
    CHECK(err_has("config: foo: unknown key"));
    CHECK(err_has("line 1)"));

    CASE("a scalar where a section is expected is reported");
    int rc = load("history: 5\n");
    int rc2 = rc == 0 ? unknown() : rc;
    CHECK(rc2 != 0);
    CHECK(err_has("history"));
    CHECK(err_has("line 1"));
    rc = load("limits: big\n");
    rc2 = rc == 0 ? unknown() : rc;
    CHECK(rc2 != 0);
    CHECK(err_has("limits"));

    CASE("a section with every key commented out is an empty section, not a value");
    CHECK(load("history:\n#  max_messages: 5\nlimits:\n  max_topics: 5\n") == 0);
    CHECK(I("history.max_messages") == 100);
    CHECK(unknown() == 0);

    CASE("plugin sections: declared keys, types, env, unknown keys");
    static const rt_cfg_key_t keys[] = {
        {"heartbeat", RT_CFG_DURATION, "15s", 1000, 3600000},
        {"compress", RT_CFG_BOOL, "false", 0, 0},
        {"name", RT_CFG_STRING, "x", 0, 0},
        {"max", RT_CFG_SIZE, "1KiB", 1, 1 << 20},
        {0},
    };
    CHECK(load("sse:\n  heartbeat: 5s\n  compress: yes\n  max: 2KiB\n") == 0);
    CHECK(unknown() != 0); /* sse.* are not declared yet */
    CHECK(err_has("config: sse: unknown key")); /* the section, on its own line */
    CHECK(rt_config_add_section("sse", keys, err, sizeof(err)) == 0);
    CHECK(I("sse.heartbeat") == 5000);
    CHECK(I("sse.compress") == 1);
    CHECK(strcmp(rt_cfg_str("sse.name"), "x") == 0);
    CHECK(I("sse.max") == 2048);
    CHECK(unknown() == 0);
    CHECK(load("sse:\n  heartbeat: 5s\n  bogus: 1\n") == 0);
    CHECK(rt_config_add_section("sse", keys, err, sizeof(err)) == 0);
    CHECK(unknown() != 0);
    CHECK(err_has("sse.bogus"));
    CHECK(err_has("line 3"));
    CHECK(load("sse:\n  compress: maybe\n") == 0);
    err[0] = '\0';
    CHECK(rt_config_add_section("sse", keys, err, sizeof(err)) != 0);
    CHECK(err_has("sse.compress"));
    CHECK(err_has("line 2"));
    CHECK(load("sse:\n  heartbeat: 2h\n") == 0);
    err[0] = '\0';
    CHECK(rt_config_add_section("sse", keys, err, sizeof(err)) != 0);
    CHECK(err_has("sse.heartbeat"));
    setenv("RTB_SSE_HEARTBEAT", "2s", 1);
    CHECK(load("sse:\n  heartbeat: 5s\n") == 0);
    CHECK(rt_config_add_section("sse", keys, err, sizeof(err)) == 0);
    CHECK(I("sse.heartbeat") == 2000);
    CHECK(I("sse.compress") == 0);
    unsetenv("RTB_SSE_HEARTBEAT");

    CASE("plugins.NAME.KEY in the file with its variable set: the variable wins, the line stays valid");
    static const char *const envs[] = {"RTB_SSE_HEARTBEAT", "RTB_PLUGINS_SSE_HEARTBEAT"};
    for (size_t i = 0; i < 2; i++) {
        setenv(envs[i], "3s", 1);
        CHECK(load("plugins:\n  load: [sse]\n  sse:\n    heartbeat: 5s\n") == 0);
        CHECK(rt_config_add_section("sse", keys, err, sizeof(err)) == 0);
        CHECK(I("sse.heartbeat") == 3000);
        CHECK(strcmp(origin("sse.heartbeat"), envs[i]) == 0);
        CHECK(unknown() == 0);
        unsetenv(envs[i]);
    }

    CASE("command-line override");
    CHECK(load("history:\n  max_messages: 5\n") == 0);
    CHECK(rt_config_override("history.max_messages", "42", err, sizeof(err)) == 0);
    CHECK(I("history.max_messages") == 42);
    err[0] = '\0';
    CHECK(rt_config_override("history.max_messages", "x", err, sizeof(err)) != 0);
    CHECK(err_has("history.max_messages"));
    err[0] = '\0';
    CHECK(rt_config_override("no.such", "1", err, sizeof(err)) != 0);
    CHECK(err_has("no.such"));
    CHECK(rt_config_override("listen", "127.0.0.1:9999", err, sizeof(err)) == 0);
    CHECK(list_is("listen", L("127.0.0.1:9999")));
}

static void test_parsers(void)
{
    int64_t x;
    CASE("durations parse to ms");
    struct {
        const char *s;
        int64_t ms;
    } durs[] = {{"250ms", 250}, {"15s", 15000}, {"2m", 120000}, {"1h", 3600000}, {"1d", 86400000},
                {"15", 15000},  {"0", 0},       {"0ms", 0},     {"1.5s", 1500},  {"0.25s", 250}};
    for (size_t i = 0; i < sizeof(durs) / sizeof(*durs); i++) {
        x = -12345;
        int rc = rt_parse_duration_ms(durs[i].s, &x);
        if (rc != 0 || x != durs[i].ms)
            printf("  duration %s -> rc %d, %lld\n", durs[i].s, rc, (long long)x);
        CHECK(rc == 0 && x == durs[i].ms);
    }
    CASE("bad durations");
    const char *bad_durs[] = {"", "abc", "5x", "-1s", "1 h", "ms", "s", "1hh", "1sec", "inf", "nan", "nanms", "1e400s"};
    for (size_t i = 0; i < sizeof(bad_durs) / sizeof(*bad_durs); i++) {
        int rc = rt_parse_duration_ms(bad_durs[i], &x);
        if (rc == 0)
            printf("  duration \"%s\" accepted\n", bad_durs[i]);
        CHECK(rc != 0);
    }
    CASE("durations through the config");
    const char *dy[] = {"shutdown:\n  drain: 250ms\n", "shutdown:\n  drain: 15s\n", "shutdown:\n  drain: 2m\n",
                        "shutdown:\n  drain: 1h\n"};
    const int64_t dms[] = {250, 15000, 120000, 3600000};
    for (int i = 0; i < 4; i++) {
        CHECK(load(dy[i]) == 0);
        CHECK(I("shutdown.drain") == dms[i]);
    }
    CHECK(load("shutdown:\n  drain: nan\n") != 0);
    CHECK(err_has("shutdown.drain"));
    CHECK(err_has("not a duration")); /* not "nan is out of range" */

    CASE("sizes parse to bytes");
    struct {
        const char *s;
        int64_t b;
    } sizes[] = {{"65536", 65536}, {"64KiB", 65536}, {"1MiB", 1048576}, {"1GiB", 1073741824LL}, {"0", 0}, {"2kib", 2048}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
        x = -12345;
        int rc = rt_parse_size(sizes[i].s, &x);
        if (rc != 0 || x != sizes[i].b)
            printf("  size %s -> rc %d, %lld\n", sizes[i].s, rc, (long long)x);
        CHECK(rc == 0 && x == sizes[i].b);
    }
    CASE("bad sizes");
    const char *bad_sizes[] = {"", "abc", "-1", "1.5MiB", "KiB", "1TiB", "0x10", "10 apples", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(*bad_sizes); i++) {
        int rc = rt_parse_size(bad_sizes[i], &x);
        if (rc == 0)
            printf("  size \"%s\" accepted\n", bad_sizes[i]);
        CHECK(rc != 0);
    }
    CASE("sizes through the config");
    CHECK(load("limits:\n  max_message_bytes: 64KiB\n  max_queue_bytes: 1MiB\n") == 0);
    CHECK(I("limits.max_message_bytes") == 65536);
    CHECK(I("limits.max_queue_bytes") == 1048576);
    CHECK(load("limits:\n  max_message_bytes: 1MiB\n  max_queue_bytes: 2MiB\n") == 0);
    CHECK(I("limits.max_message_bytes") == 1048576);
    CHECK(I("limits.max_queue_bytes") == 2097152);

    CASE("listen addresses");
    rt_listen_addr_t a;
    CHECK(rt_parse_addr("127.0.0.1:8080", &a) == 0);
    CHECK(a.ss.ss_family == AF_INET && a.len == sizeof(struct sockaddr_in));
    CHECK(ntohs(((struct sockaddr_in *)&a.ss)->sin_port) == 8080);
    CHECK(a.loopback);
    CHECK(strcmp(a.text, "127.0.0.1:8080") == 0);
    CHECK(rt_parse_addr("[::1]:9000", &a) == 0);
    CHECK(a.ss.ss_family == AF_INET6 && a.loopback);
    CHECK(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port) == 9000);
    CHECK(rt_parse_addr("0.0.0.0:80", &a) == 0);
    CHECK(a.ss.ss_family == AF_INET && !a.loopback);
    CHECK(rt_parse_addr("*:81", &a) == 0);
    CHECK(a.ss.ss_family == AF_INET && !a.loopback && ((struct sockaddr_in *)&a.ss)->sin_addr.s_addr == htonl(INADDR_ANY));
    CHECK(rt_parse_addr("localhost:82", &a) == 0);
    CHECK(a.loopback);
    CHECK(rt_parse_addr("8080", &a) == 0); /* a bare port is loopback */
    CHECK(a.loopback && ntohs(((struct sockaddr_in *)&a.ss)->sin_port) == 8080);
    CHECK(rt_parse_addr("[::]:8080", &a) == 0);
    CHECK(a.ss.ss_family == AF_INET6 && !a.loopback);
    CHECK(rt_parse_addr("10.1.2.3:65535", &a) == 0);
    CHECK(!a.loopback);
    CHECK(rt_parse_addr("8o80", &a) != 0);
    CHECK(rt_parse_addr("127.0.0.1:", &a) != 0);
    CHECK(rt_parse_addr("127.0.0.1:0", &a) != 0);
    CHECK(rt_parse_addr("127.0.0.1:70000", &a) != 0);
    CHECK(rt_parse_addr("127.0.0.1:80x", &a) != 0);
    CHECK(rt_parse_addr("[::1]9000", &a) != 0);
    CHECK(rt_parse_addr("[::1", &a) != 0);
    CHECK(rt_parse_addr("[::1]", &a) != 0);
    CHECK(rt_parse_addr("300.1.1.1:80", &a) != 0);
    CHECK(rt_parse_addr("", &a) != 0);
    /* an IPv6 address needs brackets: "::1" must not silently become [::]:1 (all interfaces, port 1) */
    int r6 = rt_parse_addr("::1", &a);
    if (r6 == 0)
        printf("  \"::1\" parsed as family %d, port %d, loopback %d\n", a.ss.ss_family,
               ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port), a.loopback);
    CHECK(r6 != 0);
}

static int rewrite(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* SIGHUP: the file is read into a new table; the one in use (rt_cfg) never changes; rt_lim takes the new limits. */
static void test_reload(void)
{
    CASE("reload");
    char path[256];
    rt_config_reset();
    CHECK(write_file(path, sizeof(path), "limits:\n  publish_per_subject: 5\nhistory:\n  max_messages: 7\n") == 0);
    CHECK(rt_config_load(path, err, sizeof(err)) == 0);
    CHECK(rt_config_override("listen", "127.0.0.1:9999", err, sizeof(err)) == 0);
    CHECK(unknown() == 0);
    rt_config_freeze();
    CHECK(rt_lim.publish_per_subject == 5);
    CHECK(rt_lim.max_connections > 0); /* 0 in the file: from the open file limit */
    CHECK(rt_cfg_next("limits.publish_per_subject") == NULL);

    /* a bad value: refused with key and line, nothing changes */
    CHECK(rewrite(path, "history:\n  max_messages: 7\nlimits:\n  publish_per_subject: lots\n") == 0);
    err[0] = '\0';
    CHECK(rt_config_reload_begin(path, err, sizeof(err)) != 0);
    CHECK(err_has("limits.publish_per_subject: \"lots\" is not an integer") && err_has("line 4"));
    rt_config_reload_end(0);
    CHECK(rt_lim.publish_per_subject == 5);
    CHECK(rt_cfg_int("limits.publish_per_subject") == 5);

    /* an unknown key is refused too */
    CHECK(rewrite(path, "limits:\n  publish_per_subjects: 9\n") == 0);
    err[0] = '\0';
    CHECK(rt_config_reload_begin(path, err, sizeof(err)) != 0);
    CHECK(err_has("limits.publish_per_subjects: unknown key") && err_has("line 2"));
    rt_config_reload_end(0);

    /* a good file: the new values are readable until the end, then the limits apply; the table in use stays */
    CHECK(rewrite(path, "limits:\n  publish_per_subject: 9\n  max_connections: 77\nhistory:\n  max_messages: 8\n") == 0);
    err[0] = '\0';
    CHECK(rt_config_reload_begin(path, err, sizeof(err)) == 0);
    const rt_cfg_value_t *n = rt_cfg_next("limits.publish_per_subject"), *l = rt_cfg_next("listen");
    CHECK(n && n->i == 9);
    CHECK(l && l->nlist == 1 && strcmp(l->list[0], "127.0.0.1:9999") == 0); /* the command line still wins */
    CHECK(rt_cfg_int("limits.publish_per_subject") == 5);
    rt_config_reload_end(1);
    CHECK(rt_lim.publish_per_subject == 9);
    CHECK(rt_lim.max_connections == 77);
    CHECK(rt_cfg_int("history.max_messages") == 7); /* needs a restart */
    CHECK(rt_cfg_next("limits.publish_per_subject") == NULL);
    unlink(path);
    rt_config_reset();
}

/* A list of mappings (webhooks.endpoints): each entry's keys keep their lines; refusals name entry, key and line. */
static void test_maps(void)
{
    const char *two = "webhooks:\n  vacated_delay: 1s\n  endpoints:\n    - url: http://127.0.0.1:9/a\n"
                      "      events: [topic.occupied, presence.join]\n      secret: s1\n    - url: http://127.0.0.1:9/b\n"
                      "      secret: s2\n      max_attempts: 3\n";
    CHECK(load(two) == 0);
    CHECK(unknown() == 0);
    const rt_cfg_value_t *v = rt_cfg("webhooks.endpoints");
    CHECK(v && v->nlist == 2 && v->entries[0].line == 4 && v->entries[1].line == 7);
    const rt_cfg_field_t *f = v ? rt_cfg_entry_field(&v->entries[0], "events") : NULL;
    CHECK(f && f->is_seq && f->n == 2 && strcmp(f->items[1], "presence.join") == 0 && f->line == 5);
    f = v ? rt_cfg_entry_field(&v->entries[1], "max_attempts") : NULL;
    CHECK(f && !f->is_seq && strcmp(f->items[0], "3") == 0 && f->line == 9);
    CHECK(v && rt_cfg_entry_field(&v->entries[1], "events") == NULL);
    rt_cfg_entry_error("webhooks.endpoints", 1, "max_attempts", err, sizeof(err), "is bad");
    CHECK(err_has("config: webhooks.endpoints[1].max_attempts: is bad (") && err_has("line 9)"));
    rt_cfg_entry_error("webhooks.endpoints", 1, "topics", err, sizeof(err), "missing");
    CHECK(err_has("webhooks.endpoints[1].topics: missing (") && err_has("line 7)")); /* the entry's line */
    CHECK(load("webhooks:\n  endpoints:\n    - url: http://x/\n      colour: red\n") != 0);
    CHECK(err_has("config: webhooks.endpoints[0].colour: unknown key") && err_has("line 4"));
    CHECK(load("webhooks:\n  endpoints:\n    - url: http://x/\n    - http://y/\n") != 0);
    CHECK(err_has("config: webhooks.endpoints[1]: each entry of this list is a mapping") && err_has("line 4"));
    CHECK(load("webhooks:\n  endpoints: http://x/\n") != 0);
    CHECK(err_has("config: webhooks.endpoints: expected a list of mappings") && err_has("line 2"));
    CHECK(load("webhooks:\n  endpoints:\n") == 0 && rt_cfg("webhooks.endpoints")->nlist == 0);
    setenv("RTB_WEBHOOKS_ENDPOINTS", "[{url: http://x/}]", 1);
    CHECK(load_defaults() != 0 && err_has("RTB_WEBHOOKS_ENDPOINTS") && err_has("from the file only"));
    unsetenv("RTB_WEBHOOKS_ENDPOINTS");
    rt_config_reset();
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* results survive a sanitizer abort */
    clear_rtb_env();
    test_defaults();
    test_file_values();
    test_errors();
    test_env();
    test_unknown();
    test_parsers();
    test_reload();
    test_maps();
    clear_rtb_env();
    rt_config_reset();
    return UNIT_DONE();
}
