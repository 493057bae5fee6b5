/*
 * h2floor — the floor of S5-SSE-h2 (tests/bench/run): what h2o 2.2.5 itself keeps per idle HTTP/2 stream.
 * A TLS listener (h2 by ALPN, OpenSSL's buffers released between records: as rtbroker's) whose only handler starts a streaming 200 response, sends
 * one small chunk (as rtbroker sends `retry:`) and then holds the stream, writing nothing more until the
 * client goes away. No broker, no subscription, no timers: whatever memory an idle stream costs here is
 * h2o's (its stream object, its request and the request's memory pool), and rtbroker cannot go below it
 * without changing h2o.
 *
 * Build: cc -std=gnu11 -O2 -DH2O_USE_LIBUV=0 -o build/bench/h2floor tests/bench/h2floor.c -lh2o-evloop -lssl -lcrypto -lz -lpthread
 * Run:   h2floor --port P --cert cert.pem --key key.pem
 */
#define H2O_USE_LIBUV 0
#include <h2o.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct held {
    h2o_generator_t gen; /* first: h2o calls proceed/stop with it */
    int sending;
} held_t;

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    ((held_t *)gen)->sending = 0; /* nothing more to write: the stream sits idle */
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)gen, (void)req; /* the held_t lives in the request's pool and goes with it */
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    held_t *h = h2o_mem_alloc_pool(&req->pool, sizeof(*h));
    h->gen = (h2o_generator_t){on_proceed, on_stop};
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/event-stream"));
    h2o_start_response(req, &h->gen);
    static h2o_iovec_t first = {": ok\n\n", 6};
    h->sending = 1;
    h2o_send(req, &first, 1, H2O_SEND_STATE_IN_PROGRESS);
    return 0;
}

static h2o_accept_ctx_t accept_ctx;

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err != NULL)
        return;
    h2o_socket_t *sock;
    while ((sock = h2o_evloop_socket_accept(listener)) != NULL)
        h2o_accept(&accept_ctx, sock);
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *cert = NULL, *key = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cert") == 0)
            cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
    }
    if (port <= 0 || cert == NULL || key == NULL) {
        fprintf(stderr, "usage: h2floor --port P --cert cert.pem --key key.pem\n");
        return 2;
    }
    static h2o_globalconf_t conf;
    static h2o_context_t ctx;
    h2o_config_init(&conf);
    h2o_hostconf_t *host = h2o_config_register_host(&conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
    h2o_create_handler(pc, sizeof(h2o_handler_t))->on_req = on_req;

    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
    SSL_CTX_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS); /* as rtbroker (broker/tls.c): idle connections keep no OpenSSL buffers */
    if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1 || SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "h2floor: cannot load %s / %s\n", cert, key);
        return 1;
    }
    h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        perror("h2floor: listen");
        return 1;
    }
    h2o_context_init(&ctx, h2o_evloop_create(), &conf);
    accept_ctx = (h2o_accept_ctx_t){.ctx = &ctx, .hosts = conf.hosts, .ssl_ctx = ssl};
    h2o_socket_t *listener = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    h2o_socket_read_start(listener, on_accept);
    for (;;)
        h2o_evloop_run(ctx.loop, INT32_MAX);
}
