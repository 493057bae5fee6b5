/* The config file read into flat (path, values, line) entries: config.c's input, kept apart from its key table. */
#ifndef RT_CONFIG_FILE_H
#define RT_CONFIG_FILE_H

#include "config.h"

typedef struct raw {
    char *path;   /* "history.max_messages"; an entry of a list of mappings: "webhooks.endpoints[0].url" */
    char **items; /* scalar: one item; sequence: its items */
    rt_listen_tls_t **tls; /* listen only: per item, NULL when plain (or NULL: all plain) */
    int *item_lines;       /* a list of mappings: the line of each entry (items are then empty strings) */
    size_t n;
    int is_seq, is_maps, line, used;
    int key_lines[12]; /* the line of each key of the path (a.b.c: a's, b's, c's), the first 12 */
} raw_t;

typedef struct rt_cfg_file {
    raw_t *raws;
    size_t nraws;
    char name[512]; /* the file's name, for errors */
} rt_cfg_file_t;
/* The file being read (main thread only; config.c swaps it aside while a SIGHUP reads the file again). */
extern rt_cfg_file_t rt_cfgf;

/* Reads the YAML file into rt_cfgf: 0, or -1 with err naming the key (or the YAML problem) and the line. */
int rt_cfg_file_parse(const char *path, char *err, size_t errlen);
void rt_cfg_file_free(void);
raw_t *rt_cfg_raw(const char *path);
/* Sets an RT_CFG_MAPS value from the file (each entry's keys checked against v->fields): 0, or -1 with err. */
int rt_cfg_file_maps(rt_cfg_value_t *v, char *err, size_t errlen);
void rt_cfg_entries_free(rt_cfg_value_t *v);

#endif
