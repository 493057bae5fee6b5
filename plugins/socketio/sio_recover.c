/*
 * Connection state recovery across a cluster, without shared state: the topics a socket subscribed with
 * emit('subscribe') travel in its recovery offset. socket.io-client keeps the last string argument of every
 * EVENT as the offset and sends it back with its pid on reconnect, so each message this socket gets ends with
 * "<id>~MAC~topics", the MAC (the broker's `mac` service: presence.client_secret, the same on every node) binding
 * the topic list to the pid. Any node checks it, re-checks the rights, and resubscribes from the id.
 * The socket's topic list lives here too.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sio.h"

#define svc sio_svc
#define MAC_CHARS 32
static const char mac_context[] = "rtbroker socketio recovery v1";

int sio_topic_find(const sio_state_t *st, const char *t, size_t len)
{
    for (size_t i = 0; i < st->ntopics; i++)
        if (st->topics[i].len == len && memcmp(st->topics[i].pattern, t, len) == 0)
            return (int)i;
    return -1;
}

void sio_topic_add(sio_state_t *st, const char *t, size_t len, int presence, int emitted)
{
    int i = sio_topic_find(st, t, len);
    if (i >= 0) {
        st->topics[i].presence |= presence;
        st->topics[i].emitted |= emitted;
        return;
    }
    st->topics = realloc(st->topics, (st->ntopics + 1) * sizeof(*st->topics));
    char *copy = malloc(len ? len : 1);
    if (st->topics == NULL || copy == NULL)
        abort();
    memcpy(copy, t, len);
    st->topics[st->ntopics++] = (sio_topic_t){copy, len, presence, emitted};
}

void sio_topics_clear(sio_state_t *st)
{
    for (size_t i = 0; i < st->ntopics; i++)
        free(st->topics[i].pattern);
    free(st->topics);
    st->topics = NULL;
    st->ntopics = 0;
    free(st->rtok);
    st->rtok = NULL;
    st->rtok_len = 0;
}

/* "~" MAC "~" then the emitted topics joined by ',' ('+' before those with presence), then "\"]" */
size_t sio_token_need(const sio_state_t *st, size_t topic_len)
{
    size_t n = 2 + MAC_CHARS + (topic_len ? topic_len + 2 : 0);
    for (size_t i = 0; i < st->ntopics; i++)
        if (st->topics[i].emitted)
            n += st->topics[i].len + 2;
    return n;
}

static void sign(const char *pid, const char *list, size_t len, char out[MAC_CHARS + 1])
{
    char *d = malloc(SIO_ID_LEN + 1 + len + 1);
    if (d == NULL)
        abort();
    memcpy(d, pid, SIO_ID_LEN);
    d[SIO_ID_LEN] = '~';
    memcpy(d + SIO_ID_LEN + 1, list, len);
    svc->mac(mac_context, (rt_str_t){d, SIO_ID_LEN + 1 + len}, out);
    free(d);
}

void sio_token_update(sio_state_t *st)
{
    free(st->rtok);
    st->rtok = NULL;
    st->rtok_len = 0;
    size_t need = sio_token_need(st, 0), n = 0;
    if (sio_recovery_window == 0 || need == 2 + MAC_CHARS || strlen(st->pid) != SIO_ID_LEN || need > SIO_TOKEN_MAX)
        return;
    char *list = malloc(need), *tok = malloc(need + 2);
    if (list == NULL || tok == NULL)
        abort();
    for (size_t i = 0; i < st->ntopics; i++) {
        if (!st->topics[i].emitted)
            continue;
        if (n)
            list[n++] = ',';
        if (st->topics[i].presence)
            list[n++] = '+';
        memcpy(list + n, st->topics[i].pattern, st->topics[i].len);
        n += st->topics[i].len;
    }
    char mac[MAC_CHARS + 1];
    sign(st->pid, list, n, mac);
    int l = snprintf(tok, need + 2, "~%s~%.*s\"]", mac, (int)n, list);
    free(list);
    st->rtok = tok;
    st->rtok_len = (size_t)l;
}

int sio_token_parse(const char *pid, const char *offset, size_t len, size_t *idlen, sio_state_t *want)
{
    const char *t1 = memchr(offset, '~', len);
    *idlen = t1 ? (size_t)(t1 - offset) : len;
    if (t1 == NULL)
        return 0;
    const char *mac = t1 + 1, *end = offset + len;
    if (len > SIO_CURSOR_MAX + SIO_TOKEN_MAX || end - mac < MAC_CHARS + 1 || mac[MAC_CHARS] != '~' ||
        strlen(pid) != SIO_ID_LEN)
        return -1;
    const char *list = mac + MAC_CHARS + 1;
    char want_mac[MAC_CHARS + 1];
    sign(pid, list, (size_t)(end - list), want_mac);
    if (CRYPTO_memcmp(want_mac, mac, MAC_CHARS) != 0)
        return -1;
    size_t max = (size_t)svc->cfg_int("limits", "max_topics"), added = 0;
    for (const char *p = list; p < end;) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma ? comma : end;
        int presence = *p == '+';
        p += presence;
        if (e <= p || ++added > max)
            return -1;
        sio_topic_add(want, p, (size_t)(e - p), presence, 1);
        p = e + 1;
    }
    return 1;
}

void sio_offset_packet(sio_io_t *io, rt_str_t cursor)
{
    sio_state_t *st = io->st;
    if (cursor.len >= SIO_CURSOR_MAX)
        return;
    static const char head[] = "42[\"rt.offset\",\"";
    rt_str_t tail = st->rtok ? (rt_str_t){st->rtok, st->rtok_len} : (rt_str_t){"\"]", 2}; /* none emitted: the id */
    size_t n = sizeof(head) - 1 + cursor.len + tail.len;
    char *p = malloc(n);
    if (p == NULL)
        abort();
    memcpy(p, head, sizeof(head) - 1);
    memcpy(p + sizeof(head) - 1, cursor.base, cursor.len);
    memcpy(p + sizeof(head) - 1 + cursor.len, tail.base, tail.len);
    sio_send(io, p, n);
    free(p);
}

int sio_recover_subscribe(rt_sub_t *sub, const sio_state_t *want, rt_str_t from)
{
    rt_str_t *t = malloc((want->ntopics ? want->ntopics : 1) * sizeof(*t));
    if (t == NULL)
        abort();
    for (size_t i = 0; i < want->ntopics; i++)
        t[i] = (rt_str_t){want->topics[i].pattern, want->topics[i].len};
    rt_sub_opts_t o = {t, want->ntopics, from, 0};
    int err = svc->subscribe(sub, &o);
    free(t);
    return err;
}

/* The new connection's token refuses some recovered topic: find which (each alone, live only, then let go), drop
 * them with an rt.dropped event, and say how many are left. */
int sio_recover_prune(sio_io_t *io, sio_state_t *want)
{
    for (size_t i = 0; i < want->ntopics;) {
        sio_topic_t *t = &want->topics[i];
        rt_str_t name = {t->pattern, t->len};
        rt_sub_opts_t o = {&name, 1, {NULL, 0}, 0};
        int err = t->emitted ? svc->subscribe(io->sub, &o) : RT_OK;
        if (err == RT_OK) {
            if (t->emitted)
                svc->unsubscribe(io->sub, name);
            i++;
            continue;
        }
        char buf[600];
        int n = snprintf(buf, sizeof(buf), "42[\"rt.dropped\",{\"topic\":\"%.*s\",\"error\":\"%s\"}]",
                         (int)(t->len > 255 ? 255 : t->len), t->pattern, svc->strerror(err));
        sio_send(io, buf, (size_t)n);
        free(t->pattern);
        *t = want->topics[--want->ntopics];
    }
    return (int)want->ntopics;
}
