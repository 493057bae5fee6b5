/*
 * Token verification. libjwt 1.10 checks only the signature, so everything else is
 * here: the algorithm is read from the header first and must be one configured for
 * the key it selects (no `none`, no HS256 keyed with the RSA public key), a key is
 * always passed (a NULL key accepts anything), and exp/nbf (with leeway), iss and aud
 * are checked by hand; a token without exp is refused unless auth.jwt.require_exp is off.
 * Keys are swapped under a lock on SIGHUP.
 */
#include <errno.h>
#include <math.h>
#include <jwt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "jwtauth.h"
#include "text.h"
#include "topic.h"

#define MAX_TOKEN 8192

static pthread_rwlock_t keys_lock = PTHREAD_RWLOCK_INITIALIZER;
static unsigned char *secret, *pubkey;
static size_t secret_len, pubkey_len;
static int allowed[JWT_ALG_TERM];
static int64_t leeway_ms;
static int require_exp;
static const char *issuer, *audience, *claim;

static const char *const alg_names[JWT_ALG_TERM] = {"none", "HS256", "HS384", "HS512", "RS256",
                                                   "RS384", "RS512", "ES256", "ES384", "ES512"};

static int is_hmac(int alg) { return alg >= JWT_ALG_HS256 && alg <= JWT_ALG_HS512; }

int rt_jwt_load_secret(unsigned char **out, size_t *outlen, char *err, size_t errlen)
{
    if (rt_cfg_secret("auth.jwt.secret", out, outlen, err, errlen) != 0)
        return -1;
    if (*out && *outlen < 16)
        rt_log(RT_LOG_WARN, "auth.jwt.secret is %zu bytes; HMAC secrets should have at least 32", *outlen);
    return 0;
}

/* Loads both keys into fresh buffers; installs them only when both load. */
static int load_keys(char *err, size_t errlen)
{
    const char *pk = rt_cfg_str("auth.jwt.public_key_file");
    unsigned char *ns = NULL, *np = NULL;
    size_t nslen = 0, nplen = 0;
    if (rt_jwt_load_secret(&ns, &nslen, err, errlen) != 0)
        return -1;
    if (pk[0]) {
        if (rt_read_file(pk, &np, &nplen, err, errlen, "auth.jwt.public_key_file") != 0) {
            free(ns);
            return -1;
        }
        if (nplen == 0 || strstr((char *)np, "-----BEGIN") == NULL || strstr((char *)np, "PRIVATE KEY") != NULL) {
            rt_cfg_error("auth.jwt.public_key_file", err, errlen, "%s is not a PEM public key", pk);
            free(ns);
            free(np);
            return -1;
        }
        if (strstr((char *)np, "CERTIFICATE") != NULL) {
            rt_cfg_error("auth.jwt.public_key_file", err, errlen,
                         "%s is a certificate; libjwt needs the public key (openssl x509 -pubkey -noout -in CERT)", pk);
            free(ns);
            free(np);
            return -1;
        }
    }
    pthread_rwlock_wrlock(&keys_lock);
    free(secret);
    free(pubkey);
    secret = ns, secret_len = nslen, pubkey = np, pubkey_len = nplen;
    pthread_rwlock_unlock(&keys_lock);
    return 0;
}

int rt_jwt_init(char *err, size_t errlen)
{
    const rt_cfg_value_t *algs = rt_cfg("auth.jwt.algorithms");
    int has_secret = rt_cfg_str("auth.jwt.secret")[0] != '\0', has_pk = rt_cfg_str("auth.jwt.public_key_file")[0] != '\0';
    memset(allowed, 0, sizeof(allowed));
    if (algs->nlist == 0) {
        for (int a = JWT_ALG_HS256; a <= JWT_ALG_ES384; a++)
            allowed[a] = is_hmac(a) ? has_secret : has_pk;
    }
    for (size_t i = 0; i < algs->nlist; i++) {
        int a = 0;
        for (int k = 1; k < JWT_ALG_TERM; k++)
            if (strcmp(algs->list[i], alg_names[k]) == 0)
                a = k;
        if (a == 0) {
            rt_cfg_error("auth.jwt.algorithms", err, errlen,
                         "\"%s\" is not one of HS256 HS384 HS512 RS256 RS384 RS512 ES256 ES384%s", algs->list[i],
                         strcmp(algs->list[i], "none") == 0 ? " (alg none is never accepted)" : "");
            return -1;
        }
        if (is_hmac(a) ? !has_secret : !has_pk) {
            rt_cfg_error("auth.jwt.algorithms", err, errlen, "%s needs %s", algs->list[i],
                         is_hmac(a) ? "auth.jwt.secret" : "auth.jwt.public_key_file");
            return -1;
        }
        allowed[a] = 1;
    }
    leeway_ms = rt_cfg_int("auth.jwt.leeway");
    require_exp = rt_cfg_int("auth.jwt.require_exp") != 0;
    issuer = rt_cfg_str("auth.jwt.issuer");
    audience = rt_cfg_str("auth.jwt.audience");
    claim = rt_cfg_str("auth.jwt.claim");
    return load_keys(err, errlen);
}

int rt_jwt_reload(char *err, size_t errlen) { return load_keys(err, errlen); }

int rt_jwt_configured(void)
{
    for (int a = 1; a < JWT_ALG_TERM; a++)
        if (allowed[a])
            return 1;
    return 0;
}

void rt_ident_free(rt_ident_t *id) { free(id); }

int rt_b64url_decode(const char *in, size_t len, char *out, size_t cap, size_t *outlen)
{
    unsigned v = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        int d = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26 : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-' ? 62 : c == '_' ? 63 : -1;
        if (d < 0)
            return -1;
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return -1;
            out[o++] = (char)((v >> bits) & 0xff);
        }
    }
    *outlen = o;
    return 0;
}

/* The header's alg, or JWT_ALG_TERM when unreadable. */
static int header_alg(const char *token)
{
    const char *dot = strchr(token, '.');
    char hdr[1024], alg[16];
    size_t n;
    rt_json_field_t f[16];
    if (dot == NULL || rt_b64url_decode(token, (size_t)(dot - token), hdr, sizeof(hdr), &n) != 0)
        return JWT_ALG_TERM;
    int nf = rt_json_object(rt_str(hdr, n), f, 16);
    for (int i = 0; i < nf; i++) {
        if (f[i].type == 's' && rt_str_eqc(f[i].key, "alg")) {
            int l = rt_json_unescape(f[i].value, alg, sizeof(alg) - 1);
            if (l < 0)
                return JWT_ALG_TERM;
            alg[l] = '\0';
            for (int a = 0; a < JWT_ALG_TERM; a++)
                if (strcmp(alg, alg_names[a]) == 0)
                    return a;
        }
    }
    return JWT_ALG_TERM;
}

/* Patterns from a JSON array of strings; invalid entries are skipped (and logged). */
static size_t patterns(rt_str_t arr, rt_str_t *out, size_t max)
{
    rt_str_t items[64];
    int n = rt_json_array(arr, items, 64);
    size_t k = 0;
    for (int i = 0; i < n && k < max; i++) {
        if (items[i].len < 2 || items[i].base[0] != '"' || items[i].len > RT_TOPIC_MAX + 2)
            continue;
        rt_str_t p = rt_str(items[i].base + 1, items[i].len - 2);
        if (rt_topic_check(p, 1, NULL) != RT_OK) {
            rt_log(RT_LOG_WARN, "auth: token grants an invalid pattern \"%.*s\"; ignored", (int)p.len, p.base);
            continue;
        }
        out[k++] = p;
    }
    return k;
}

rt_ident_t *rt_ident_new(const char *user, int64_t exp_ms, const char *perms)
{
    rt_str_t subs[64], pubs[64], info = {NULL, 0};
    size_t nsub = 0, npub = 0;
    rt_json_field_t f[16];
    int nf = perms ? rt_json_object(rt_cstr(perms), f, 16) : 0;
    for (int i = 0; i < nf; i++) {
        if (rt_str_eqc(f[i].key, "sub") && f[i].type == 'a')
            nsub = patterns(f[i].value, subs, 64);
        else if (rt_str_eqc(f[i].key, "pub") && f[i].type == 'a')
            npub = patterns(f[i].value, pubs, 64);
        else if (rt_str_eqc(f[i].key, "info") && f[i].type == 'o' && f[i].value.len <= 1024)
            info = f[i].value;
    }
    size_t size = sizeof(rt_ident_t) + (nsub + npub) * sizeof(char *) + info.len + 1;
    for (size_t i = 0; i < nsub; i++)
        size += subs[i].len + 1;
    for (size_t i = 0; i < npub; i++)
        size += pubs[i].len + 1;
    rt_ident_t *id = rt_calloc(1, size);
    snprintf(id->user, sizeof(id->user), "%s", user ? user : "");
    id->exp_ms = exp_ms;
    id->sub_pats = (char **)(id + 1);
    id->pub_pats = id->sub_pats + nsub;
    char *p = (char *)(id->pub_pats + npub);
    for (size_t i = 0; i < nsub; i++) { /* the block is zeroed: each copy ends with a NUL */
        id->sub_pats[id->nsub++] = memcpy(p, subs[i].base, subs[i].len);
        p += subs[i].len + 1;
    }
    for (size_t i = 0; i < npub; i++) {
        id->pub_pats[id->npub++] = memcpy(p, pubs[i].base, pubs[i].len);
        p += pubs[i].len + 1;
    }
    if (info.len)
        id->info = memcpy(p, info.base, info.len);
    return id;
}

/* A NumericDate claim (RFC 7519: seconds, maybe with a fraction) in ms: 0 absent, 1 found, -1 not a number. */
static int numeric_date(jwt_t *jwt, const char *name, int64_t *ms)
{
    char *js = jwt_get_grants_json(jwt, name);
    if (js == NULL)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(js, &end);
    int ok = end != js && *end == '\0' && errno == 0 && isfinite(v) && js[0] != '"' && fabs(v) < 1e13;
    free(js);
    if (!ok)
        return -1;
    *ms = (int64_t)(v * 1000.0);
    return 1;
}

int rt_jwt_verify(rt_str_t token, rt_ident_t **out, const char **why)
{
    static __thread char reason[160];
    char buf[MAX_TOKEN + 1];
    *out = NULL;
    if (token.len == 0 || token.len > MAX_TOKEN) {
        *why = token.len ? "the token is longer than 8 KiB" : "the token is empty";
        return RT_EUNAUTHORIZED;
    }
    memcpy(buf, token.base, token.len);
    buf[token.len] = '\0';
    int alg = header_alg(buf);
    if (alg == JWT_ALG_TERM) {
        *why = "the token is not a JWT (unreadable header)";
        return RT_EUNAUTHORIZED;
    }
    if (!allowed[alg]) {
        snprintf(reason, sizeof(reason), "algorithm %s is not accepted%s", alg_names[alg],
                 rt_jwt_configured() ? " (see auth.jwt.algorithms)" : " (no auth.jwt key is configured)");
        *why = reason;
        return RT_EUNAUTHORIZED;
    }
    jwt_t *jwt = NULL;
    pthread_rwlock_rdlock(&keys_lock);
    const unsigned char *key = is_hmac(alg) ? secret : pubkey;
    size_t keylen = is_hmac(alg) ? secret_len : pubkey_len;
    int rc = key ? jwt_decode(&jwt, buf, key, (int)keylen) : EINVAL; /* never a NULL key: it verifies nothing */
    pthread_rwlock_unlock(&keys_lock);
    if (rc != 0 || jwt == NULL) {
        *why = "bad signature or malformed token";
        return RT_EUNAUTHORIZED;
    }
    int result = RT_EUNAUTHORIZED;
    int64_t now = (int64_t)rt_wall_ms();
    if ((int)jwt_get_alg(jwt) != alg) {
        *why = "the token's algorithm does not match its header";
        goto done;
    }
    int64_t exp_ms = 0, nbf_ms = 0;
    int has_exp = numeric_date(jwt, "exp", &exp_ms), has_nbf = numeric_date(jwt, "nbf", &nbf_ms);
    if (has_exp < 0 || has_nbf < 0) {
        *why = has_exp < 0 ? "exp is not a NumericDate" : "nbf is not a NumericDate";
        goto done;
    }
    if (!has_exp && require_exp) {
        *why = "the token has no exp claim, and auth.jwt.require_exp is true (give tokens an expiry)";
        goto done;
    }
    if (has_exp && exp_ms + leeway_ms <= now) {
        snprintf(reason, sizeof(reason), "the token expired %llds ago", (long long)((now - exp_ms) / 1000));
        *why = reason;
        goto done;
    }
    if (has_nbf && nbf_ms - leeway_ms > now) {
        snprintf(reason, sizeof(reason), "the token is not valid for another %llds (nbf)", (long long)((nbf_ms - now) / 1000));
        *why = reason;
        goto done;
    }
    if (issuer[0]) {
        const char *iss = jwt_get_grant(jwt, "iss");
        if (iss == NULL || strcmp(iss, issuer) != 0) {
            *why = "the token's issuer (iss) is not auth.jwt.issuer";
            goto done;
        }
    }
    if (audience[0]) {
        const char *aud = jwt_get_grant(jwt, "aud");
        int ok = aud && strcmp(aud, audience) == 0;
        if (!ok) {
            char *js = jwt_get_grants_json(jwt, "aud");
            rt_str_t items[32];
            int n = js ? rt_json_array(rt_cstr(js), items, 32) : -1;
            for (int i = 0; i < n && !ok; i++)
                ok = items[i].len == strlen(audience) + 2 && memcmp(items[i].base + 1, audience, items[i].len - 2) == 0;
            free(js);
        }
        if (!ok) {
            *why = "the token's audience (aud) does not include auth.jwt.audience";
            goto done;
        }
    }
    char *perms = jwt_get_grants_json(jwt, claim);
    *out = rt_ident_new(jwt_get_grant(jwt, "sub"), has_exp ? exp_ms : 0, perms);
    free(perms);
    result = RT_OK;
done:
    jwt_free(jwt);
    return result;
}
