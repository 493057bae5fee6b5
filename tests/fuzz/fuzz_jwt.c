/* From a token to permissions (broker/jwtauth.c, auth.c): header and algorithm checks, exp/nbf/iss/aud, the
 * `rt` claim's sub/pub pattern lists and info. Byte 0 picks how the rest becomes a token:
 *   0: it is the token;  1: it is the claims JSON, signed HS256 by libjwt with the configured secret;
 *   2: "HEADER-JSON\nCLAIMS-JSON", encoded verbatim and signed HS256 (the fuzzer controls every byte);
 *   bit 2 set: auth.jwt.issuer and audience are configured (iss "fuzz-iss", aud "fuzz-aud");
 *   bit 3 set: auth.jwt.require_exp is true (off otherwise, so that claims without exp reach every check). */
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "auth.h"
#include "config.h"
#include "fuzz.h"
#include "text.h"
#include "topic.h"

#define SECRET "fuzz-secret-0123456789abcdef0123"

static int configured = -1;

/* opts: bit 0 issuer and audience, bit 1 require_exp */
static void configure(int opts)
{
    char err[512];
    rt_config_reset();
    FUZZ_ASSERT(rt_config_load(NULL, err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_config_override("auth.jwt.secret", SECRET, err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_config_override("auth.anonymous.subscribe", "public.>", err, sizeof(err)) == 0);
    FUZZ_ASSERT(rt_config_override("auth.jwt.require_exp", opts & 2 ? "true" : "false", err, sizeof(err)) == 0);
    if (opts & 1) {
        FUZZ_ASSERT(rt_config_override("auth.jwt.issuer", "fuzz-iss", err, sizeof(err)) == 0);
        FUZZ_ASSERT(rt_config_override("auth.jwt.audience", "fuzz-aud", err, sizeof(err)) == 0);
    }
    FUZZ_ASSERT(rt_auth_init(err, sizeof(err)) == 0);
    configured = opts;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    rt_log_level = -1;
    configure(0);
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

/* header.claims.signature over the raw bytes given. */
static char *sign_raw(const uint8_t *hdr, size_t hlen, const uint8_t *claims, size_t clen)
{
    rt_buf_t b = {0};
    b64url(&b, hdr, hlen);
    rt_buf_append(&b, ".", 1);
    b64url(&b, claims, clen);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)b.base, b.len, mac, &maclen);
    rt_buf_append(&b, ".", 1);
    b64url(&b, mac, maclen);
    rt_buf_append(&b, "", 1);
    return b.base;
}

static char *sign_claims(const uint8_t *claims, size_t clen)
{
    char *json = rt_strndup(rt_str((const char *)claims, clen)), *token = NULL;
    jwt_t *jwt = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, json) == 0 &&
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)SECRET, (int)strlen(SECRET)) == 0)
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
    int mode = data[0] & 3, opts = (data[0] >> 2) & 3;
    if (opts != configured)
        configure(opts);
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *token = NULL;
    rt_str_t t = rt_str((const char *)p, n);
    if (mode == 1) {
        token = sign_claims(p, n);
        if (token == NULL)
            return 0;
        t = rt_cstr(token);
    } else if (mode == 2) {
        const uint8_t *nl = memchr(p, '\n', n);
        if (nl == NULL)
            return 0;
        token = sign_raw(p, (size_t)(nl - p), nl + 1, n - (size_t)(nl - p) - 1);
        t = rt_cstr(token);
    }
    rt_ident_t *id = NULL;
    const char *why = NULL;
    int err = rt_jwt_verify(t, &id, &why);
    FUZZ_ASSERT(err == RT_OK || err == RT_EUNAUTHORIZED);
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
