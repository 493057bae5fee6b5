/*
 * TLS for listeners: one OpenSSL context per TLS entry of `listen`, shared by every worker
 * (SSL_CTX is safe to share between threads), with modern defaults: TLS 1.2 at least, the
 * server's cipher order (ECDHE with AEAD ciphers for TLS 1.2), no compression, no
 * renegotiation, session tickets on, ALPN h2 then http/1.1. SIGHUP builds fresh contexts from
 * the same files and server.c swaps them into the workers; this file never touches a connection.
 */
#include <errno.h>
#include <h2o.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "server.h"
#include "tls.h"

static SSL_CTX **ctxs; /* per listen entry; NULL for a plain listener */
static size_t nctxs;

/* TLS 1.2 only; TLS 1.3 keeps OpenSSL's suites (all AEAD). */
static const char tls12_ciphers[] = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
                                    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_error(); /* the first: the cause, not its consequences */
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown OpenSSL error";
}

static int no_passphrase(char *buf, int size, int rwflag, void *asked)
{
    (void)buf, (void)size, (void)rwflag;
    *(int *)asked = 1;
    return -1;
}

static int readable(size_t i, const char *field, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rt_cfg_listen_error(i, field, err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int load_key(SSL_CTX *ctx, size_t i, const rt_listen_tls_t *t, char *err, size_t errlen)
{
    BIO *bio = BIO_new_file(t->key, "r");
    int asked = 0;
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, &asked) : NULL;
    BIO_free(bio);
    if (key == NULL) {
        rt_cfg_listen_error(i, "key", err, errlen, "%s: %s", t->key,
                            asked ? "the key is encrypted; give it unencrypted (e.g. openssl pkey -in KEY -out KEY.plain)"
                                  : "not a PEM private key");
        return -1;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, key) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    if (!ok) {
        rt_cfg_listen_error(i, "key", err, errlen, "%s does not match the certificate in %s (%s)", t->key, t->cert, ossl_reason());
        return -1;
    }
    return 0;
}

/* A new context for listen entry i from its files, or NULL with err. */
static SSL_CTX *build(size_t i, char *err, size_t errlen)
{
    const rt_listen_tls_t *t = rt_cfg_listen_tls(i);
    if (readable(i, "cert", t->cert, err, errlen) != 0 || readable(i, "key", t->key, err, errlen) != 0)
        return NULL;
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        rt_cfg_listen_error(i, "cert", err, errlen, "cannot create a TLS context: %s", ossl_reason());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_cipher_list(ctx, tls12_ciphers);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"rtbroker", 8);
    /* OpenSSL keeps a read and a write buffer of about 17 KB each per connection; an idle SSE stream or WebSocket
     * needs neither between records (nginx sets the same) */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    h2o_ssl_register_alpn_protocols(ctx, h2o_alpn_protocols);
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1) {
        rt_cfg_listen_error(i, "cert", err, errlen, "%s: not a PEM certificate (%s); give the server certificate first, then its chain",
                            t->cert, ossl_reason());
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (load_key(ctx, i, t, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* "subject /CN=…, serial 1F…, valid until …" */
static void describe(SSL_CTX *ctx, char *out, size_t outlen)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    char subject[256] = "?", until[64] = "?", *serial = NULL;
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    if (bn)
        serial = BN_bn2hex(bn);
    BIO *mem = BIO_new(BIO_s_mem());
    if (mem && ASN1_TIME_print(mem, X509_get0_notAfter(x)) == 1) {
        int n = BIO_read(mem, until, sizeof(until) - 1);
        until[n > 0 ? n : 0] = '\0';
    }
    BIO_free(mem);
    snprintf(out, outlen, "subject %s, serial %s, valid until %s%s", subject, serial ? serial : "?", until,
             X509_cmp_current_time(X509_get0_notAfter(x)) < 0 ? " (EXPIRED: clients will refuse it)" : "");
    OPENSSL_free(serial);
    BN_free(bn);
}

int rt_tls_init(char *err, size_t errlen)
{
    const rt_cfg_value_t *l = rt_cfg("listen");
    nctxs = l->nlist;
    ctxs = rt_calloc(nctxs ? nctxs : 1, sizeof(*ctxs));
    for (size_t i = 0; i < nctxs; i++) {
        if (rt_cfg_listen_tls(i) == NULL)
            continue;
        if ((ctxs[i] = build(i, err, errlen)) == NULL)
            return -1;
        char what[600];
        describe(ctxs[i], what, sizeof(what));
        rt_log(RT_LOG_INFO, "TLS on %s: certificate %s", l->list[i], what);
    }
    return 0;
}

SSL_CTX *rt_tls_ctx(size_t i) { return i < nctxs ? ctxs[i] : NULL; }

int rt_tls_reload(void)
{
    const rt_cfg_value_t *l = rt_cfg("listen");
    int failed = 0;
    for (size_t i = 0; i < nctxs; i++) {
        if (ctxs[i] == NULL)
            continue;
        char err[1024], what[600];
        SSL_CTX *ctx = build(i, err, sizeof(err));
        if (ctx == NULL) {
            rt_log(RT_LOG_ERROR, "SIGHUP: TLS on %s: %s; keeping the certificate in use", l->list[i], err);
            failed++;
            continue;
        }
        rt_server_set_tls_ctx(i, ctx);
        SSL_CTX_free(ctxs[i]); /* the workers hold their own references until they are done with it */
        ctxs[i] = ctx;
        describe(ctx, what, sizeof(what));
        rt_log(RT_LOG_INFO, "SIGHUP: TLS on %s: certificate reloaded, %s; open connections are kept", l->list[i], what);
    }
    return failed;
}
