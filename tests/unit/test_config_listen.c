/* Unit tests for `listen` entries with TLS (broker/config.h): the mapping form {address, tls: {cert, key}} in block
 * and flow style, the same in RTB_LISTEN and --listen as a YAML flow list, and errors naming listen[i].… and the line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "unit.h"

static char err[1024];

static int load(const char *yaml)
{
    const char *dir = getenv("TMPDIR");
    char path[256];
    snprintf(path, sizeof(path), "%s/rtb_test_listen_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -99;
    size_t n = strlen(yaml);
    int ok = write(fd, yaml, n) == (ssize_t)n;
    close(fd);
    err[0] = '\0';
    rt_config_reset();
    int rc = ok ? rt_config_load(path, err, sizeof(err)) : -99;
    unlink(path);
    return rc;
}

static int load_defaults(void)
{
    err[0] = '\0';
    rt_config_reset();
    return rt_config_load(NULL, err, sizeof(err));
}

static int err_has(const char *part)
{
    int ok = strstr(err, part) != NULL;
    if (!ok)
        printf("  error \"%s\" lacks \"%s\"\n", err, part);
    return ok;
}

static int addr_is(size_t i, const char *want)
{
    const rt_cfg_value_t *v = rt_cfg("listen");
    int ok = v && i < v->nlist && strcmp(v->list[i], want) == 0;
    if (!ok)
        printf("  listen[%zu] is \"%s\", not \"%s\"\n", i, v && i < v->nlist ? v->list[i] : "(none)", want);
    return ok;
}

static size_t nlisten(void) { return rt_cfg("listen") ? rt_cfg("listen")->nlist : 0; }

static int tls_is(size_t i, const char *cert, const char *key)
{
    const rt_listen_tls_t *t = rt_cfg_listen_tls(i);
    int ok = t && strcmp(t->cert, cert) == 0 && strcmp(t->key, key) == 0;
    if (!ok)
        printf("  listen[%zu].tls is %s%s%s%s\n", i, t ? t->cert : "(plain)", t ? ", " : "", t ? t->key : "", "");
    return ok;
}

static void test_file_forms(void)
{
    CASE("block list: plain and TLS entries side by side");
    CHECK(load("workers: 1\n"
               "listen:\n"
               "  - 127.0.0.1:8080\n"
               "  - address: 127.0.0.1:8443\n"
               "    tls:\n"
               "      cert: /etc/rtb/cert.pem\n"
               "      key: /etc/rtb/key.pem\n"
               "  - address: \"[::1]:8444\"\n") == 0);
    CHECK(nlisten() == 3);
    CHECK(addr_is(0, "127.0.0.1:8080") && addr_is(1, "127.0.0.1:8443") && addr_is(2, "[::1]:8444"));
    CHECK(rt_cfg_listen_tls(0) == NULL);
    CHECK(tls_is(1, "/etc/rtb/cert.pem", "/etc/rtb/key.pem"));
    CHECK(rt_cfg_listen_tls(2) == NULL); /* a mapping without tls is a plain listener */
    const rt_listen_tls_t *t = rt_cfg_listen_tls(1);
    CHECK(t && t->cert_line == 6 && t->key_line == 7);
    err[0] = '\0';
    CHECK(rt_config_check_unknown(err, sizeof(err)) == 0);

    CASE("flow style in the file");
    CHECK(load("listen: [\"8080\", {address: \"127.0.0.1:8443\", tls: {cert: c.pem, key: k.pem}}]\n") == 0);
    CHECK(nlisten() == 2 && addr_is(0, "8080") && addr_is(1, "127.0.0.1:8443"));
    CHECK(tls_is(1, "c.pem", "k.pem"));

    CASE("one mapping instead of a list");
    CHECK(load("listen:\n  address: 127.0.0.1:8443\n  tls: {cert: c.pem, key: k.pem}\n") == 0);
    CHECK(nlisten() == 1 && addr_is(0, "127.0.0.1:8443") && tls_is(0, "c.pem", "k.pem"));

    CASE("the plain forms are unchanged");
    CHECK(load("listen: 127.0.0.1:9000\n") == 0);
    CHECK(nlisten() == 1 && addr_is(0, "127.0.0.1:9000") && rt_cfg_listen_tls(0) == NULL);
    CHECK(load("listen: [\"127.0.0.1:9000\", \"[::1]:9001\"]\n") == 0);
    CHECK(nlisten() == 2 && rt_cfg_listen_tls(1) == NULL);
    CHECK(load_defaults() == 0);
    CHECK(nlisten() == 1 && addr_is(0, "127.0.0.1:8080") && rt_cfg_listen_tls(0) == NULL);

    CASE("other lists still take plain values only");
    CHECK(load("plugins:\n  load:\n    - {name: sse}\n") != 0);
    CHECK(err_has("plugins.load") && err_has("plain values"));
}

static void test_file_errors(void)
{
    CASE("an entry without address");
    CHECK(load("listen:\n  - 127.0.0.1:8080\n  - tls: {cert: c.pem, key: k.pem}\n") != 0);
    CHECK(err_has("listen[1].address") && err_has("missing") && err_has("line 3"));

    CASE("an unknown key in an entry");
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    tsl: {cert: c.pem, key: k.pem}\n") != 0);
    CHECK(err_has("listen[0].tsl") && err_has("unknown key") && err_has("line 3"));

    CASE("an unknown key under tls");
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    tls:\n      crt: c.pem\n      key: k.pem\n") != 0);
    CHECK(err_has("listen[0].tls.crt") && err_has("unknown key") && err_has("expected cert and key") && err_has("line 4"));

    CASE("tls without key, or with an empty cert");
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    tls:\n      cert: c.pem\n") != 0);
    CHECK(err_has("listen[0].tls.key") && err_has("missing"));
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    tls:\n      cert: \"\"\n      key: k.pem\n") != 0);
    CHECK(err_has("listen[0].tls.cert") && err_has("line 4"));

    CASE("tls that is not a mapping");
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    tls: yes\n") != 0);
    CHECK(err_has("listen[0].tls") && err_has("mapping") && err_has("line 3"));

    CASE("a key given twice in an entry");
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    address: 127.0.0.1:8444\n") != 0);
    CHECK(err_has("listen[0].address") && err_has("twice"));

    CASE("a list inside the list");
    CHECK(load("listen:\n  - [127.0.0.1:8443]\n") != 0);
    CHECK(err_has("listen[0]") && err_has("expected an address or a mapping"));

    CASE("a bad address in a TLS entry names listen");
    CHECK(load("listen:\n  - address: 127.0.0.1:84x3\n    tls: {cert: c.pem, key: k.pem}\n") != 0);
    CHECK(err_has("listen") && err_has("127.0.0.1:84x3") && err_has("port"));
}

static void test_env_and_cli(void)
{
    CASE("RTB_LISTEN as a YAML flow list overrides the file");
    setenv("RTB_LISTEN", " [127.0.0.1:7000, {address: 127.0.0.1:7443, tls: {cert: /x/c.pem, key: /x/k.pem}}] ", 1);
    CHECK(load("listen: 127.0.0.1:9000\n") == 0);
    CHECK(nlisten() == 2 && addr_is(0, "127.0.0.1:7000") && addr_is(1, "127.0.0.1:7443"));
    CHECK(rt_cfg_listen_tls(0) == NULL && tls_is(1, "/x/c.pem", "/x/k.pem"));
    CHECK(rt_cfg_listen_tls(1)->cert_line == 0);
    rt_cfg_listen_error(1, "key", err, sizeof(err), "nope");
    CHECK(err_has("config: listen[1].tls.key (RTB_LISTEN): nope"));

    CASE("RTB_LISTEN: a bad flow list names the variable");
    setenv("RTB_LISTEN", "[127.0.0.1:7000, {address: 127.0.0.1:7443, tls: {cert: c.pem}}]", 1);
    CHECK(load_defaults() != 0);
    CHECK(err_has("listen[1].tls.key") && err_has("RTB_LISTEN"));
    setenv("RTB_LISTEN", "[127.0.0.1:7000, {address: 127.0.0.1:7443", 1);
    CHECK(load_defaults() != 0);
    CHECK(err_has("listen (RTB_LISTEN)") && err_has("YAML"));
    setenv("RTB_LISTEN", "[]", 1);
    CHECK(load_defaults() != 0);
    CHECK(err_has("at least one address"));

    CASE("RTB_LISTEN: bracketed IPv6 addresses are still addresses");
    setenv("RTB_LISTEN", "[::1]:7001", 1);
    CHECK(load_defaults() == 0);
    CHECK(nlisten() == 1 && addr_is(0, "[::1]:7001"));
    setenv("RTB_LISTEN", "[::1]:7001,127.0.0.1:7002", 1);
    CHECK(load_defaults() == 0);
    CHECK(nlisten() == 2 && addr_is(1, "127.0.0.1:7002") && rt_cfg_listen_tls(1) == NULL);
    setenv("RTB_LISTEN", "[\"[::1]:7001\"]", 1);
    CHECK(load_defaults() == 0);
    CHECK(nlisten() == 1 && addr_is(0, "[::1]:7001"));
    unsetenv("RTB_LISTEN");

    CASE("--listen takes the same flow list");
    CHECK(load("listen: 127.0.0.1:9000\n") == 0);
    CHECK(rt_config_override("listen", "{address: 127.0.0.1:9443, tls: {cert: c.pem, key: k.pem}}", err, sizeof(err)) == 0);
    CHECK(nlisten() == 1 && tls_is(0, "c.pem", "k.pem"));
    CHECK(rt_config_override("listen", "127.0.0.1:9001", err, sizeof(err)) == 0);
    CHECK(nlisten() == 1 && rt_cfg_listen_tls(0) == NULL);

    CASE("error lines of the cert and the key");
    CHECK(load("listen:\n  - address: 127.0.0.1:8443\n    tls:\n      key: k.pem\n      cert: c.pem\n") == 0);
    rt_cfg_listen_error(0, "cert", err, sizeof(err), "cannot read %s", "c.pem");
    CHECK(err_has("config: listen[0].tls.cert: cannot read c.pem (") && err_has(" line 5)"));
    rt_cfg_listen_error(0, "key", err, sizeof(err), "bad");
    CHECK(err_has("listen[0].tls.key: bad (") && err_has(" line 4)"));
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    unsetenv("RTB_LISTEN");
    test_file_forms();
    test_file_errors();
    test_env_and_cli();
    rt_config_reset();
    return UNIT_DONE();
}
