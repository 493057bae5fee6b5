/* JWT verification (libjwt) with the library's traps closed; keys reloadable on SIGHUP. */
#ifndef RT_JWTAUTH_H
#define RT_JWTAUTH_H

#include "rt.h"

/* What a verified token grants. One allocation; free with rt_ident_free. */
typedef struct rt_ident {
    char user[129];      /* the `sub` claim, or "" */
    int64_t exp_ms;      /* wall-clock expiry in ms, 0 when the token has none */
    char **sub_pats, **pub_pats;
    size_t nsub, npub;
    char *info;          /* the claim's `info` object as JSON (<= 1 KiB), or NULL */
    unsigned proxied : 1, refreshing : 1; /* granted by the connect proxy; a refresh call is waiting (proxy.c) */
} rt_ident_t;

/* Reads auth.jwt.*; 0, or -1 with err naming the key. Without auth.jwt.secret and public_key_file, no token
 * is accepted (every token gets 401). */
int rt_jwt_init(char *err, size_t errlen);
/* auth.jwt.secret's bytes through rt_cfg_secret (inline, env:NAME or file:/path) into *out (caller frees; NULL
 * when none is configured), warning when short: 0, or -1 with err naming the key. Also used by `rtbroker token`. */
int rt_jwt_load_secret(unsigned char **out, size_t *outlen, char *err, size_t errlen);
/* Re-reads `file:`/`env:` secrets and the public key file (SIGHUP); keeps the old keys when that fails. */
int rt_jwt_reload(char *err, size_t errlen);
int rt_jwt_configured(void);
/* RT_OK with *out (caller frees), or RT_EUNAUTHORIZED with *why (never the token). */
int rt_jwt_verify(rt_str_t token, rt_ident_t **out, const char **why);
void rt_ident_free(rt_ident_t *id);
/* An identity from a user (or NULL), an expiry (0: none) and grants as a token's claim gives them:
 * {"sub":[patterns],"pub":[patterns],"info":{…}} (or NULL); invalid patterns are dropped with a warning. */
rt_ident_t *rt_ident_new(const char *user, int64_t exp_ms, const char *perms);
/* Base64url (no padding) into out: 0, or -1 when malformed or over cap. */
int rt_b64url_decode(const char *in, size_t len, char *out, size_t cap, size_t *outlen);

#endif
