/* From a token to permissions (broker/jwtauth.c, auth.c): header and algorithm checks, exp/nbf/iss/aud, the
 * `rt` claim's sub/pub pattern lists and info. Byte 0 picks how the rest becomes a token:
 *   bits 0-1, 0: it is the token;  1: it is the claims JSON, signed by libjwt with the key set's key;
 *     2: "HEADER-JSON\nCLAIMS-JSON", encoded verbatim and signed (the fuzzer controls every byte);
 *     3: like 2, but signed HS256 with the public key PEM as the HMAC secret (key confusion: always refused);
 *   bit 2 set: auth.jwt.issuer and audience are configured (iss "fuzz-iss", aud "fuzz-aud");
 *   bits 3-4, the key set: 0 the HS256 secret; 1 the secret and an RSA public key (RS256); 2 the secret and a P-256
 *     public key (ES256); 3 the RSA public key alone. Modes 1 and 2 sign with RS256 / ES256 under key sets 1-3;
 *   bit 5 set: auth.jwt.require_exp is true (off otherwise, so that claims without exp reach every check).
 * The keys are test keys in tests/fuzz/keys/ (RT_FUZZ_KEYS, set by the Makefile). */
#include <jwt.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "auth.h"
#include "config.h"
#include "fuzz.h"
#include "text.h"
#include "topic.h"

#define SECRET "fuzz-secret-0123456789abcdef0123"

enum { KEYS_HS, KEYS_RS, KEYS_ES, KEYS_RS_ONLY };

typedef struct keypair {
    const char *name;      /* file stem in tests/fuzz/keys */
    char pub_path[512];
    char *pub_pem, *priv_pem;
    size_t pub_len, priv_len;
    EVP_PKEY *priv;
} keypair_t;

static keypair_t rsa = {.name = "rs256"}, ec = {.name = "es256"};
static int configured = -1; /* iss_aud | keys << 1 | require_exp << 3 */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    FUZZ_ASSERT(f != NULL); /* tests/fuzz/keys is missing? */
    rt_buf_t b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rt_buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    rt_buf_append(&b, "", 1);
    return b.base;
}

static void load_pair(keypair_t *k)
{
    char path[512];
    snprintf(k->pub_path, sizeof(k->pub_path), "%s/%s.pub.pem", RT_FUZZ_KEYS, k->name);
    snprintf(path, sizeof(path), "%s/%s.key.pem", RT_FUZZ_KEYS, k->name);
    k->pub_pem = slurp(k->pub_path, &k->pub_len);
    k->priv_pem = slurp(path, &k->priv_len);
    BIO *bio = BIO_new_mem_buf(k->priv_pem, (int)k->priv_len);
    k->priv = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    FUZZ_ASSERT(k->priv != NULL);
}

static void configure(int iss_aud, int keys, int require_exp)
{
    char err[512];
    rt_config_reset();
    FUZZ_ASSERT(rt_config_load(NULL, err, sizeof(err)) == 0);
    if (keys != KEYS_RS_ONLY)
        FUZZ_ASSERT(rt_config_override("auth.jwt.secret", SECRET, err, sizeof(err)) == 0);
    if (keys != KEYS_HS)
        FUZZ_ASSERT(rt_config_override("auth.jwt.public_key_file", keys == KEYS_ES ? ec.pub_path : rsa.pub_path, err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_config_override("auth.anonymous.subscribe", "public.>", err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_config_override("auth.jwt.require_exp", require_exp ? "true" : "false", err, sizeof(err)) == 0);
    if (iss_aud) {
        FUZZ_ASSERT(rt_config_override("auth.jwt.issuer", "fuzz-iss", err, sizeof(err)) == 0);
        FUZZ_ASSERT(rt_config_override("auth.jwt.audience", "fuzz-aud", err, sizeof(err)) == 0);
    }
    FUZZ_ASSERT(rt_auth_init(err, sizeof(err)) == 0);
    configured = iss_aud | keys << 1 | require_exp << 3;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    rt_log_level = -1;
    load_pair(&rsa);
    load_pair(&ec);
    configure(0, KEYS_HS, 0);
    return 0;
}

static void b64url(rt_buf_t *b, const uint8_t *p, size_t n)
{
    size_t start = b->len;
    rt_base64_append(b, rt_str((const char *)p, n));
    size_t o = start;
    for (size_t i = start; i < b->len; i++) {
        char c = b->base[i];
        if (c == '=')
            continue;
        b->base[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    b->len = o;
}

/* An RS256 or ES256 signature (JOSE form: R || S for ECDSA) of the signing input. */
static void sign_pkey(rt_buf_t *b, EVP_PKEY *key, int ecdsa)
{
    unsigned char sig[512], raw[64];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    FUZZ_ASSERT(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
                EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)b->base, b->len) == 1);
    EVP_MD_CTX_free(ctx);
    rt_buf_append(b, ".", 1);
    if (!ecdsa) {
        b64url(b, sig, siglen);
        return;
    }
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);
    FUZZ_ASSERT(es != NULL);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32);
    ECDSA_SIG_free(es);
    b64url(b, raw, sizeof(raw));
}

/* header.claims.signature over the raw bytes given, signed as the key set says (or HS256 with hmac_key). */
static char *sign_raw(const uint8_t *hdr, size_t hlen, const uint8_t *claims, size_t clen, int keys, rt_str_t hmac_key)
{
    rt_buf_t b = {0};
    b64url(&b, hdr, hlen);
    rt_buf_append(&b, ".", 1);
    b64url(&b, claims, clen);
    if (hmac_key.len || keys == KEYS_HS) {
        if (hmac_key.len == 0)
            hmac_key = RT_STRLIT(SECRET);
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        HMAC(EVP_sha256(), hmac_key.base, (int)hmac_key.len, (const unsigned char *)b.base, b.len, mac, &maclen);
        rt_buf_append(&b, ".", 1);
        b64url(&b, mac, maclen);
    } else {
        sign_pkey(&b, keys == KEYS_ES ? ec.priv : rsa.priv, keys == KEYS_ES);
    }
    rt_buf_append(&b, "", 1);
    return b.base;
}

static char *sign_claims(const uint8_t *claims, size_t clen, int keys)
{
    char *json = rt_strndup(rt_str((const char *)claims, clen)), *token = NULL;
    jwt_t *jwt = NULL;
    const keypair_t *k = keys == KEYS_ES ? &ec : &rsa;
    jwt_alg_t alg = keys == KEYS_HS ? JWT_ALG_HS256 : keys == KEYS_ES ? JWT_ALG_ES256 : JWT_ALG_RS256;
    const unsigned char *key = keys == KEYS_HS ? (const unsigned char *)SECRET : (const unsigned char *)k->priv_pem;
    int keylen = keys == KEYS_HS ? (int)strlen(SECRET) : (int)k->priv_len;
    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, json) == 0 && jwt_set_alg(jwt, alg, key, keylen) == 0)
        token = jwt_encode_str(jwt);
    jwt_free(jwt);
    free(json);
    return token;
}

static void check_ident(const rt_ident_t *id)
{
    FUZZ_ASSERT(strlen(id->user) < sizeof(id->user));
    FUZZ_ASSERT(id->nsub <= 64 && id->npub <= 64);
    for (size_t i = 0; i < id->nsub; i++) {
        rt_str_t p = rt_cstr(id->sub_pats[i]);
        FUZZ_ASSERT(rt_topic_check(p, 1, NULL) == RT_OK);
        FUZZ_ASSERT(rt_auth_allows(id, p, 0) == RT_OK); /* a granted pattern is allowed as it is */
    }
    for (size_t i = 0; i < id->npub; i++) {
        rt_str_t p = rt_cstr(id->pub_pats[i]);
        FUZZ_ASSERT(rt_topic_check(p, 1, NULL) == RT_OK);
        FUZZ_ASSERT(rt_auth_allows(id, p, 1) == RT_OK);
    }
    if (id->info)
        FUZZ_ASSERT(strlen(id->info) <= 1024 && rt_json_valid(id->info, strlen(id->info)));
    /* nothing beyond the grants: the anonymous public.> only, and never everything */
    FUZZ_ASSERT(rt_auth_allows(id, RT_STRLIT("public.x"), 0) == RT_OK);
    int all = rt_auth_allows(id, RT_STRLIT(">"), 0) == RT_OK;
    int granted_all = 0;
    for (size_t i = 0; i < id->nsub; i++)
        granted_all |= strcmp(id->sub_pats[i], ">") == 0;
    FUZZ_ASSERT(all == granted_all);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int mode = data[0] & 3, iss_aud = (data[0] >> 2) & 1, keys = (data[0] >> 3) & 3, require_exp = (data[0] >> 5) & 1;
    if ((iss_aud | keys << 1 | require_exp << 3) != configured)
        configure(iss_aud, keys, require_exp);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *token = NULL;
    rt_str_t t = rt_str((const char *)p, n);
    if (mode == 1) {
        token = sign_claims(p, n, keys);
        if (token == NULL)
            return 0;
        t = rt_cstr(token);
    } else if (mode >= 2) {
        const uint8_t *nl = memchr(p, '\n', n);
        if (nl == NULL)
            return 0;
        const keypair_t *k = keys == KEYS_ES ? &ec : &rsa;
        token = sign_raw(p, (size_t)(nl - p), nl + 1, n - (size_t)(nl - p) - 1, keys,
                         mode == 3 ? rt_str(k->pub_pem, k->pub_len) : rt_str(NULL, 0));
        t = rt_cstr(token);
    }
    rt_ident_t *id = NULL;
    const char *why = NULL;
    int err = rt_jwt_verify(t, &id, &why);
    FUZZ_ASSERT(err == RT_OK || err == RT_EUNAUTHORIZED);
    if (mode == 3)
        FUZZ_ASSERT(err != RT_OK); /* an HMAC keyed with the public key never verifies */
    if (err == RT_OK) {
        FUZZ_ASSERT(id != NULL);
        check_ident(id);
    } else {
        FUZZ_ASSERT(id == NULL && why != NULL && strlen(why) > 0);
    }
    rt_ident_free(id);
    free(token);
    return 0;
}
