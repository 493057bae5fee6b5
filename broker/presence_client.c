/*
 * Client keys: what a long-poll client hands back (client=) to stay the same presence member
 * between polls. A key is ID "." MAC, the MAC being HMAC-SHA256 over the id and the user it
 * was given to, keyed by presence.client_secret (the same on every node of a cluster, so any
 * node accepts any node's keys) or by a random secret of this process. Join and leave events
 * show only the id, so reading them does not let anyone continue someone else's member.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "presence.h"

#define MAC_BYTES 16 /* 128 bits: forging one takes 2^128 guesses */

static unsigned char *secret;
static size_t secret_len;

int rt_presence_client_init(char *err, size_t errlen)
{
    unsigned char *s = NULL;
    size_t n = 0;
    if (rt_cfg_secret("presence.client_secret", &s, &n, err, errlen) != 0)
        return -1;
    if (s && n < 16) {
        rt_cfg_error("presence.client_secret", err, errlen,
                     "%zu bytes is too short; use at least 16 random bytes, the same on every node", n);
        free(s);
        return -1;
    }
    if (s == NULL) {
        n = 32;
        s = rt_malloc(n);
        if (RAND_bytes(s, (int)n) != 1) {
            snprintf(err, errlen, "presence: no random bytes from OpenSSL for the client key secret");
            free(s);
            return -1;
        }
        if (strcmp(rt_cfg_str("bus"), "nats") == 0)
            rt_log(RT_LOG_WARN, "presence.client_secret is not set: long-poll presence members keep their client id "
                                "only while their polls reach this node; set the same secret on every node");
    }
    free(secret);
    secret = s, secret_len = n;
    return 0;
}

/* The MAC of client for user, as hex, into out (2 * MAC_BYTES + 1 bytes). */
static void mac_hex(rt_str_t client, rt_str_t user, char *out)
{
    static const char label[] = "rtbroker client key v1";
    unsigned char msg[sizeof(label) + RT_CLIENT_MAX + 1 + 256], md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    size_t n = 0, ulen = user.len < 256 ? user.len : 256;
    memcpy(msg, label, sizeof(label)); /* with its NUL: id and user follow, NUL-separated */
    n += sizeof(label);
    memcpy(msg + n, client.base, client.len);
    n += client.len;
    msg[n++] = '\0';
    if (ulen)
        memcpy(msg + n, user.base, ulen);
    n += ulen;
    HMAC(EVP_sha256(), secret, (int)secret_len, msg, n, md, &mdlen);
    for (size_t i = 0; i < MAC_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void rt_presence_mac(const char *context, rt_str_t data, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    size_t cl = strlen(context) + 1;
    unsigned char *msg = rt_malloc(cl + data.len);
    memcpy(msg, context, cl);
    if (data.len)
        memcpy(msg + cl, data.base, data.len);
    HMAC(EVP_sha256(), secret, (int)secret_len, msg, cl + data.len, md, &mdlen);
    free(msg);
    for (size_t i = 0; i < MAC_BYTES; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void rt_presence_client_key(rt_str_t client, rt_str_t user, char *out)
{
    memcpy(out, client.base, client.len);
    out[client.len] = '.';
    mac_hex(client, user, out + client.len + 1);
}

int rt_presence_client_check(rt_str_t key, rt_str_t user, rt_str_t *client)
{
    const char *dot = key.len ? memchr(key.base, '.', key.len) : NULL;
    if (dot == NULL)
        return RT_EID;
    rt_str_t id = rt_str(key.base, (size_t)(dot - key.base));
    if (!rt_presence_client_ok(id) || key.len - id.len - 1 != 2 * MAC_BYTES)
        return RT_EID;
    char want[2 * MAC_BYTES + 1];
    mac_hex(id, user, want);
    if (CRYPTO_memcmp(want, dot + 1, 2 * MAC_BYTES) != 0)
        return RT_EID;
    *client = id;
    return RT_OK;
}
