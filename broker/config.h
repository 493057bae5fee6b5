/* Configuration: YAML file, then RTB_* environment overrides, then validation; one table of keys. */
#ifndef RT_CONFIG_H
#define RT_CONFIG_H

#include <sys/socket.h>

#include "rt.h"

enum { RT_CFG_LIST = 100, RT_CFG_LISTEN = 101, RT_CFG_MAPS = 102 }; /* core-only types beside rt_cfg_type_t */

/* A list of mappings (RT_CFG_MAPS, e.g. webhooks.endpoints): each entry's keys as written, with their lines. */
typedef struct rt_cfg_field {
    char *name;
    char **items; /* one for a scalar, each item of a list */
    size_t n;
    int is_seq, line;
} rt_cfg_field_t;
typedef struct rt_cfg_entry {
    rt_cfg_field_t *fields;
    size_t nfields;
    int line; /* where the entry starts */
} rt_cfg_entry_t;

/* The TLS part of a `listen` entry {address, tls: {cert, key}}. */
typedef struct rt_listen_tls {
    char *cert, *key;        /* PEM files, as written */
    int cert_line, key_line; /* in the file, or 0 */
} rt_listen_tls_t;

typedef struct rt_cfg_value {
    const char *path; /* "history.max_messages" */
    int type;         /* rt_cfg_type_t or RT_CFG_LIST / RT_CFG_LISTEN */
    const char *default_value;
    int64_t min, max;
    /* resolved */
    int64_t i;
    char *s;
    char **list;
    size_t nlist;
    rt_listen_tls_t **tls; /* RT_CFG_LISTEN: per entry of list, NULL for a plain listener (or all plain) */
    const char *fields;       /* RT_CFG_MAPS: the keys an entry may have, comma-separated */
    rt_cfg_entry_t *entries;  /* RT_CFG_MAPS: nlist of them (s holds them as text, to compare on SIGHUP) */
    const char *origin; /* "default", "file", or the env var name */
    int line;           /* line in the file, when from the file */
} rt_cfg_value_t;

typedef struct rt_listen_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[128]; /* as written */
    int loopback;
} rt_listen_addr_t;

/* Parses the file (NULL: defaults only) and applies core keys and env. Returns 0, or -1 with
 * a message in err that names the key and the line. */
int rt_config_load(const char *path, char *err, size_t errlen);
/* Forgets everything loaded (tests load several configurations in one process). */
void rt_config_reset(void);
/* Declares a plugin's keys under section, resolves them from the file and env. */
int rt_config_add_section(const char *section, const rt_cfg_key_t *keys, char *err, size_t errlen);
/* Keys under a section nobody will declare (a disabled plugin's) are not errors. */
void rt_config_ignore_section(const char *section);
/* After every section is declared: any key left in the file that nobody declared is an error. */
int rt_config_check_unknown(char *err, size_t errlen);
/* Set a core key from the command line (same checks as env). */
int rt_config_override(const char *path, const char *value, char *err, size_t errlen);

const rt_cfg_value_t *rt_cfg(const char *path); /* NULL when unknown */
/* The server API's and namespaces' keys (config_api.c), declared after the core's. */
extern const rt_cfg_value_t rt_cfg_api_keys[];
extern const size_t rt_cfg_napi_keys;

/* Values the hot paths read, copied once the configuration is complete (rt_config_freeze). Atomic because SIGHUP
 * replaces some of them while the workers run (rt_config_reload_end). */
typedef struct rt_limits {
    _Atomic size_t max_queue_bytes, max_topics, max_message_bytes;
    _Atomic size_t max_connections; /* limits.max_connections, 0 resolved from the open file limit */
    _Atomic double connections_per_ip, publish_per_connection, publish_per_subject;
} rt_limits_t;
extern rt_limits_t rt_lim;
/* The worker threads for a `workers` value: 0 = one per core. */
size_t rt_config_workers(int64_t configured);
/* Sets rt_lim's limits that may change while running from a table (get: rt_cfg, or rt_cfg_next on SIGHUP). */
void rt_config_set_limits(const rt_cfg_value_t *(*get)(const char *));
/* Fills rt_lim; from then on rt_cfg reads a table that never changes again. */
void rt_config_freeze(void);
/* SIGHUP: reads the file again (same environment and command line) and checks it as at start, without touching the
 * configuration in use: 0, or -1 with the error naming the key and line. rt_cfg_next reads the new values until
 * rt_config_reload_end, which applies the keys that can change while running (apply 1; others are logged as needing
 * a restart) or drops the new file (apply 0). Main thread only. */
int rt_config_reload_begin(const char *path, char *err, size_t errlen);
const rt_cfg_value_t *rt_cfg_next(const char *path);
void rt_config_reload_end(int apply);
/* An error about key path's value, naming where it came from: "config: PATH: MESSAGE (FILE line N)", or the variable. */
void rt_cfg_error(const char *path, char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int64_t rt_cfg_int(const char *path);
/* A list of mappings' entry's key, or NULL when the entry does not have it. */
const rt_cfg_field_t *rt_cfg_entry_field(const rt_cfg_entry_t *e, const char *name);
/* "config: PATH[i].FIELD: MESSAGE (FILE line N)": the field's line, or the entry's when it lacks the field. */
void rt_cfg_entry_error(const char *path, size_t i, const char *field, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
const char *rt_cfg_str(const char *path);

int rt_parse_addr(const char *text, rt_listen_addr_t *out);
/* listen entry i's TLS settings, or NULL for a plain listener. */
const rt_listen_tls_t *rt_cfg_listen_tls(size_t i);
/* An error about listen entry i's TLS file field ("cert" or "key"), naming the key and the line or the variable. */
void rt_cfg_listen_error(size_t i, const char *field, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int rt_parse_duration_ms(const char *s, int64_t *out);
int rt_parse_size(const char *s, int64_t *out);
/* A file's bytes (at most about 1 MiB; NUL-terminated, not counted in len) into *out (caller frees); -1 with err
 * naming key and its line or variable (rt_cfg_error) when it cannot be read. */
int rt_read_file(const char *path, unsigned char **out, size_t *len, char *err, size_t errlen, const char *key);
/* The secret a key names: inline text, env:NAME or file:/path (a trailing newline dropped). 0 with *out NULL when
 * the key is empty, 0 with a malloc'd *out, or -1 with err (variable unset, file unreadable, secret empty). */
int rt_cfg_secret(const char *key, unsigned char **out, size_t *len, char *err, size_t errlen);

#endif
