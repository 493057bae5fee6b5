/*
 * Presence: who is in a topic. This node's members are joined and left by the workers;
 * with the NATS bus, presence_nats.c adds the other nodes' members from the key-value
 * bucket. Every change of the cluster view becomes a join or leave message for the
 * workers (RT_MSG_JOIN / RT_MSG_LEAVE). One lock guards it all; any thread may call.
 */
#ifndef RT_PRESENCE_H
#define RT_PRESENCE_H

#include "rt.h"

#define RT_CLIENT_MAX 48 /* a client id: [A-Za-z0-9_-], at most this long */
#define RT_CLIENT_KEY_MAX (RT_CLIENT_MAX + 33) /* a client key: ID "." 32 hex digits */

/* A member as another node reports it. */
typedef struct rt_presence_member {
    rt_str_t client, user, info; /* user empty: anonymous; info: a JSON object or empty */
} rt_presence_member_t;

/* Reads presence.* (after the config is loaded) and names this node; 0, or -1 with err (presence.client_secret). */
int rt_presence_init(char *err, size_t errlen);
const char *rt_presence_node(void);
/* A new client id, unique in the cluster, into out (RT_CLIENT_MAX + 1 bytes). */
void rt_presence_new_client(char *out);
/* 1 when s has the shape of a client id. */
int rt_presence_client_ok(rt_str_t s);
/* presence_client.c: the key a long-poll client hands back to stay client of user, into out (RT_CLIENT_KEY_MAX + 1
 * bytes); RT_OK with *client (a slice of key) when key is one this cluster gave to user, else RT_EID. */
int rt_presence_client_init(char *err, size_t errlen);
/* The plugin service `mac`: HMAC-SHA256(client secret, context NUL data), 16 bytes as hex. */
void rt_presence_mac(const char *context, rt_str_t data, char out[33]);
void rt_presence_client_key(rt_str_t client, rt_str_t user, char *out);
int rt_presence_client_check(rt_str_t key, rt_str_t user, rt_str_t *client);

/* The client (of user, empty for anonymous) joins topic on this node; joins of the same client add up.
 * linger: after its last leave the client stays for presence.poll_grace (long-poll, between polls). */
void rt_presence_join(rt_str_t topic, rt_str_t user, rt_str_t client, rt_str_t info, int linger);
void rt_presence_leave(rt_str_t topic, rt_str_t user, rt_str_t client);
/* The snapshot JSON of API.md for topic, appended to out. */
void rt_presence_snapshot(rt_str_t topic, rt_buf_t *out);
/* About once a second: lingering clients whose grace ended leave. */
void rt_presence_tick(void);
void rt_presence_metrics(rt_buf_t *out);

/* --- the cluster side (presence_nats.c) --- */
/* Another node's whole member list for topic, written age_ms ago; an older version than the last one applied is
 * ignored. */
void rt_presence_remote(rt_str_t node, rt_str_t topic, uint64_t version, uint64_t age_ms, const rt_presence_member_t *m,
                        size_t n);
/* Another node showed it is alive, age_ms ago. */
void rt_presence_remote_seen(rt_str_t node, uint64_t age_ms);
/* Nodes not seen for ttl_ms are gone: their members leave. */
void rt_presence_expire_nodes(uint64_t ttl_ms);
/* This node's member list of every changed topic (every topic when all), as the value to store:
 * {"v":VERSION,"m":[[client,user|null,info|null],...]}. */
void rt_presence_collect(int all, void (*fn)(void *ctx, rt_str_t topic, rt_str_t value), void *ctx);
/* Called (with the presence lock held: signal, do not call back) when this node's members change. */
void rt_presence_on_change(void (*fn)(void));

#endif
