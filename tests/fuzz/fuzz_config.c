/* The configuration loader (broker/config.c): a YAML file with any keys and values, the core keys resolved
 * and checked, a plugin section declared (the WebSocket plugin's keys plus one of each type), unknown keys
 * reported. Errors must name a key or a line and never crash. */
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

extern const rt_transport_t rt_transport_v1;

static char path[256];

static const rt_cfg_key_t extra_keys[] = {
    {"count", RT_CFG_INT, "3", 1, 10},
    {"size", RT_CFG_SIZE, "1KiB", 0, 1 << 20},
    {"name", RT_CFG_STRING, "x", 0, 0},
    {"on", RT_CFG_BOOL, "false", 0, 0},
    {NULL, 0, NULL, 0, 0},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/rtb_fuzz_config_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    FUZZ_ASSERT(fd >= 0);
    close(fd);
    rt_log_level = -1;
    return 0;
}

static void check(int rc, const char *err)
{
    if (rc != 0) /* "config: KEY: ..." or "config: FILE line N: ..." */
        FUZZ_ASSERT(strncmp(err, "config: ", 8) == 0 && strlen(err) > 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f != NULL);
    FUZZ_ASSERT(fwrite(data, 1, size, f) == size);
    fclose(f);
    char err[1024] = "";
    rt_config_reset();
    int rc = rt_config_load(path, err, sizeof(err));
    check(rc, err);
    if (rc == 0) {
        rc = rt_config_add_section("websocket", rt_transport_v1.config, err, sizeof(err));
        check(rc, err);
    }
    if (rc == 0) {
        rc = rt_config_add_section("extra", extra_keys, err, sizeof(err));
        check(rc, err);
    }
    if (rc == 0) {
        rt_config_ignore_section("ndjson");
        rc = rt_config_check_unknown(err, sizeof(err));
        check(rc, err);
    }
    if (rc == 0) {
        rt_config_freeze();
        const rt_cfg_value_t *listen = rt_cfg("listen");
        FUZZ_ASSERT(listen && listen->nlist >= 1);
        for (size_t i = 0; i < listen->nlist; i++) {
            rt_listen_addr_t a;
            FUZZ_ASSERT(rt_parse_addr(listen->list[i], &a) == 0);
        }
        const rt_cfg_value_t *v = rt_cfg("extra.count");
        FUZZ_ASSERT(v && v->i >= 1 && v->i <= 10);
        FUZZ_ASSERT(rt_cfg_int("limits.max_message_bytes") >= 1);
        FUZZ_ASSERT(rt_cfg_str("bus") != NULL);
    }
    return 0;
}
