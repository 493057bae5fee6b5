/*
 * `rtbroker token`: mints a JWT that the configured broker accepts, signed with auth.jwt.secret (HS*), with the
 * configured issuer, audience and permissions claim, so that a newcomer can try authentication without writing a
 * token issuer first. It reads the configuration like the broker (file, then RTB_* variables) and nothing else;
 * production tokens come from your own backend.
 */
#include <getopt.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "config.h"
#include "jwtauth.h"
#include "token.h"

static void token_usage(FILE *out)
{
    fprintf(out, "usage: rtbroker token [-c FILE] [--sub USER] [--rt JSON] [--ttl DURATION]\n"
                 "\n"
                 "Prints a JWT signed with the configuration's auth.jwt.secret (HS256, or the HS algorithm auth.jwt.algorithms\n"
                 "allows), carrying auth.jwt.issuer and auth.jwt.audience when they are set.\n"
                 "  --sub USER       the token's sub claim, the user (default: test)\n"
                 "  --rt JSON        the permissions claim (auth.jwt.claim), default {\"sub\":[\">\"],\"pub\":[\">\"]}\n"
                 "  --ttl DURATION   lifetime, e.g. 15m, 1h (default 1h)\n");
}

static jwt_alg_t hmac_alg(void)
{
    const rt_cfg_value_t *algs = rt_cfg("auth.jwt.algorithms");
    static const struct {
        const char *name;
        jwt_alg_t alg;
    } hs[] = {{"HS256", JWT_ALG_HS256}, {"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512}};
    for (size_t i = 0; algs && i < algs->nlist; i++)
        for (size_t k = 0; k < 3; k++)
            if (strcmp(algs->list[i], hs[k].name) == 0)
                return hs[k].alg;
    return algs && algs->nlist ? JWT_ALG_NONE : JWT_ALG_HS256;
}

int rt_token_main(int argc, char **argv, const char *config)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'}, {"sub", required_argument, NULL, 's'},
                                         {"rt", required_argument, NULL, 'r'},     {"ttl", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *user = "test", *rt = "{\"sub\":[\">\"],\"pub\":[\">\"]}", *ttl = "1h";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's': user = optarg; break;
        case 'r': rt = optarg; break;
        case 't': ttl = optarg; break;
        case 'h': token_usage(stdout); return 0;
        default: token_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "rtbroker token: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    char err[1024];
    int64_t ttl_ms = 0;
    if (rt_parse_duration_ms(ttl, &ttl_ms) != 0 || ttl_ms < 1000) {
        fprintf(stderr, "rtbroker token: --ttl \"%s\" is not a duration of at least 1s (e.g. 15m, 1h)\n", ttl);
        return 2;
    }
    unsigned char *secret = NULL;
    size_t len = 0;
    if (rt_config_load(config, err, sizeof(err)) != 0 || rt_jwt_load_secret(&secret, &len, err, sizeof(err)) != 0) {
        fprintf(stderr, "rtbroker token: %s\n", err);
        return 2;
    }
    jwt_alg_t alg = hmac_alg();
    if (secret == NULL || alg == JWT_ALG_NONE) {
        fprintf(stderr, "rtbroker token: %s has no HMAC secret to sign with (auth.jwt.secret%s); tokens for a public key "
                        "come from whoever holds the private key\n",
                config ? config : "the configuration", secret ? " with an HS algorithm in auth.jwt.algorithms" : "");
        free(secret);
        return 2;
    }
    jwt_t *jwt = NULL;
    char *out = NULL;
    const char *iss = rt_cfg_str("auth.jwt.issuer"), *aud = rt_cfg_str("auth.jwt.audience");
    long now = (long)time(NULL);
    rt_buf_t claims = {0};
    rt_buf_printf(&claims, "{\"%s\":%s}", rt_cfg_str("auth.jwt.claim"), rt);
    rt_buf_append(&claims, "", 1);
    int bad = jwt_new(&jwt) != 0 || jwt_add_grant(jwt, "sub", user) != 0 ||
              jwt_add_grant_int(jwt, "iat", now) != 0 || jwt_add_grant_int(jwt, "exp", now + (long)(ttl_ms / 1000)) != 0 ||
              (iss[0] && jwt_add_grant(jwt, "iss", iss) != 0) || (aud[0] && jwt_add_grant(jwt, "aud", aud) != 0);
    if (!bad && jwt_add_grants_json(jwt, claims.base) != 0) {
        fprintf(stderr, "rtbroker token: --rt '%s' is not a JSON object such as {\"sub\":[\"chat.*\"],\"pub\":[\"chat.room1\"]}\n", rt);
        bad = 2;
    } else if (!bad && (jwt_set_alg(jwt, alg, secret, (int)len) != 0 || (out = jwt_encode_str(jwt)) == NULL)) {
        bad = 1;
    }
    if (bad == 1)
        fprintf(stderr, "rtbroker token: libjwt could not sign the token\n");
    if (out)
        printf("%s\n", out);
    free(out);
    jwt_free(jwt);
    rt_buf_free(&claims);
    free(secret);
    return bad ? 2 : 0;
}
