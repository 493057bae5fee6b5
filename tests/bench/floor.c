/*
 * floor — a yardstick for BENCHMARKS.md, not a product: the least a publish/subscribe
 * server can do per delivery on this machine. It speaks just what tests/bench/loadgen.c
 * sends (WebSocket subscribe on GET /sub/{topic}, keep-alive POST /pub/{topic}) and, per
 * publish, makes one write() of one unmasked text frame to each subscriber of the topic (a
 * subscriber with bytes still queued gets it queued behind them, flushed on EPOLLOUT), then
 * answers 200. No history, auth, batching or fairness: what is left is mostly the kernel's
 * per-socket-write cost, which every server pays once per delivery in the S2 and S3
 * scenarios, so its figures show roughly how close to the targets a real server can get here. Single thread, one
 * level-triggered epoll loop, non-blocking sockets; listens on 127.0.0.1 only.
 *
 * Build: cc -std=gnu11 -O2 -Wall -Wextra -Werror -o build/bench/floor tests/bench/floor.c -lcrypto
 * Run:   floor --port P [--host 127.0.0.1] [--ack-first]   (stops on SIGTERM or SIGINT)
 *        --ack-first answers a publish before its writes (rtbroker answers first; nchan, like the
 *        default here, after): with one publishing connection a server that answers after its
 *        fan-out holds the next publish back, one that answers first has it arrive mid-fan-out.
 * Load:  build/bench/loadgen --server floor --port P --ws N ...   (WebSocket subscribers only)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEAD_MAX 8192
#define BODY_MAX (1 << 20)
#define TOPIC_MAX 200
#define WS_IN_MAX 4096      /* subscribers send only pings, pongs and close frames */
#define OUT_MAX (64u << 20) /* a subscriber this far behind is closed rather than grown forever */
#define LISTENER UINT64_MAX

typedef struct topic topic_t;
typedef struct conn {
    int fd, ws, want_out;
    uint32_t gen; /* tells a reused fd from the one a stale event in the same batch was for */
    topic_t *topic;
    size_t slot; /* index in topic->subs */
    char *in, *out;
    size_t ilen, icap, ooff, olen, ocap;
} conn_t;

struct topic {
    uint64_t hash;
    conn_t **subs;
    size_t n, cap, len;
    char name[];
};

static int ep;
static conn_t **conns; /* by fd */
static size_t conns_max;
static uint32_t next_gen = 1;
static topic_t **tab; /* open addressing; topics are never removed (a run makes a few thousand) */
static size_t tab_cap = 1024, tab_n;
static volatile sig_atomic_t stop;
static char scratch[1 << 16], frame[BODY_MAX + 16];
static int ack_first; /* --ack-first: answer a publish before its writes, as rtbroker does */
static const char ok200[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static int reserve(char **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    char *q = realloc(*p, c);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void set_out(conn_t *c, int on)
{
    if (c->want_out == on) return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.u64 = (uint64_t)c->gen << 32 | (uint32_t)c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

static void close_conn(conn_t *c)
{
    topic_t *t = c->topic;
    if (t) { /* swap-remove: the order across subscribers does not matter */
        conn_t *last = t->subs[--t->n];
        t->subs[c->slot] = last;
        last->slot = c->slot;
    }
    conns[c->fd] = NULL;
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c);
}

/* At most one write(); what the socket does not take waits, in order, for EPOLLOUT.
 * With bytes already waiting, no write at all: they must go first. -1: close c. */
static int send_out(conn_t *c, const void *p, size_t n)
{
    if (c->ooff == c->olen) {
        c->ooff = c->olen = 0;
        ssize_t w = write(c->fd, p, n);
        if (w < 0 && errno != EAGAIN && errno != EINTR) return -1;
        if ((size_t)(w = w < 0 ? 0 : w) == n) return 0;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    if (c->olen - c->ooff + n > OUT_MAX) return -1;
    if (c->ooff && c->olen + n > c->ocap) {
        memmove(c->out, c->out + c->ooff, c->olen - c->ooff);
        c->olen -= c->ooff;
        c->ooff = 0;
    }
    if (reserve(&c->out, &c->ocap, c->olen + n)) return -1;
    memcpy(c->out + c->olen, p, n);
    c->olen += n;
    set_out(c, 1);
    return 0;
}

/* One write per EPOLLOUT: a second one would mostly just collect EAGAIN (and count in syscw). */
static int flush_out(conn_t *c)
{
    ssize_t w = write(c->fd, c->out + c->ooff, c->olen - c->ooff);
    if (w < 0) return errno == EAGAIN || errno == EINTR ? 0 : -1;
    if ((c->ooff += (size_t)w) < c->olen) return 0;
    c->ooff = c->olen = 0; /* the buffer keeps its size: it is a tool, memory is not its point */
    set_out(c, 0);
    return 0;
}

static topic_t *topic_get(const char *name, size_t len, int create)
{
    if (create && tab_n * 2 >= tab_cap) { /* keep the table at most half full */
        size_t m = tab_cap * 2 - 1;
        topic_t **nt = calloc(m + 1, sizeof(*nt));
        if (!nt) return NULL;
        for (size_t i = 0; i < tab_cap; i++) {
            if (!tab[i]) continue;
            size_t j = tab[i]->hash & m;
            while (nt[j])
                j = (j + 1) & m;
            nt[j] = tab[i];
        }
        free(tab);
        tab = nt;
        tab_cap = m + 1;
    }
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ull;
    size_t i = h & (tab_cap - 1);
    for (; tab[i]; i = (i + 1) & (tab_cap - 1))
        if (tab[i]->hash == h && tab[i]->len == len && memcmp(tab[i]->name, name, len) == 0) return tab[i];
    topic_t *t = create ? calloc(1, sizeof(*t) + len) : NULL;
    if (!t) return NULL;
    t->hash = h;
    t->len = len;
    memcpy(t->name, name, len);
    tab_n++;
    return tab[i] = t;
}

/* The frame is built once, then one write() per subscriber. */
static void publish(const char *name, size_t nl, const char *body, size_t len)
{
    topic_t *t = topic_get(name, nl, 0);
    if (!t || !t->n) return;
    size_t hl = len < 126 ? 2 : len < 65536 ? 4 : 10; /* then the length, big-endian, in 0, 2 or 8 bytes */
    frame[0] = (char)0x81;                               /* FIN, text */
    frame[1] = (char)(hl == 2 ? len : hl == 4 ? 126 : 127);
    for (size_t i = 2; i < hl; i++)
        frame[i] = (char)((uint64_t)len >> (8 * (hl - 1 - i)));
    memcpy(frame + hl, body, len);
    for (size_t i = t->n; i-- > 0;) /* backwards: one closed here is swapped with one already served */
        if (send_out(t->subs[i], frame, hl + len))
            close_conn(t->subs[i]);
}

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        *out++ = a[v >> 18];
        *out++ = a[(v >> 12) & 63];
        *out++ = i + 1 < n ? a[(v >> 6) & 63] : '=';
        *out++ = i + 2 < n ? a[v & 63] : '=';
    }
    *out = 0;
}

/* The trimmed value of header `name` in the head [p, e) (e: the blank line), or NULL. */
static const char *header(const char *p, const char *e, const char *name, size_t *vl)
{
    size_t nl = strlen(name);
    for (const char *l = memmem(p, (size_t)(e - p), "\r\n", 2); l && l < e; l = memmem(l, (size_t)(e - l), "\r\n", 2)) {
        l += 2;
        const char *eol = memmem(l, (size_t)(e + 2 - l), "\r\n", 2);
        if (!eol || (size_t)(eol - l) <= nl || strncasecmp(l, name, nl) != 0 || l[nl] != ':')
            continue;
        const char *v = l + nl + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        while (eol > v && (eol[-1] == ' ' || eol[-1] == '\t'))
            eol--;
        *vl = (size_t)(eol - v);
        return v;
    }
    return NULL;
}

/* The topic in `/sub/{topic}` or `/pub/{topic}` (a query string is ignored), or NULL. */
static const char *topic_of(const char *path, size_t pl, const char *prefix, size_t *tl)
{
    if (pl <= 5 || memcmp(path, prefix, 5) != 0) return NULL;
    const char *q = memchr(path + 5, '?', pl - 5);
    *tl = (q ? (size_t)(q - path) : pl) - 5;
    return *tl >= 1 && *tl <= TOPIC_MAX && !memchr(path + 5, '/', *tl) ? path + 5 : NULL;
}

/* Subscribes c: the 101 answer first, so that no frame can precede it. */
static int upgrade(conn_t *c, const char *key, size_t kl, const char *tn, size_t tl)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char src[64 + sizeof(guid)], acc[32], resp[160];
    unsigned char sha[SHA_DIGEST_LENGTH];
    memcpy(src, key, kl);
    memcpy(src + kl, guid, sizeof(guid) - 1);
    SHA1((const unsigned char *)src, kl + sizeof(guid) - 1, sha);
    b64(sha, sizeof(sha), acc);
    int rn = snprintf(resp, sizeof(resp),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n\r\n", acc);
    topic_t *t = topic_get(tn, tl, 1);
    if (!t || send_out(c, resp, (size_t)rn)) return -1;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 8;
        conn_t **ns = realloc(t->subs, nc * sizeof(*ns));
        if (!ns) return -1;
        t->subs = ns;
        t->cap = nc;
    }
    c->slot = t->n;
    t->subs[t->n++] = c;
    c->topic = t;
    c->ws = 1;
    return 0;
}

/* Handles the complete requests at the start of [p, p+n), stopping after an upgrade;
 * returns the bytes used, or -1 to close the connection. */
static long http_input(conn_t *c, const char *p, size_t n)
{
    size_t off = 0, vl, tl, kl, clen;
    while (off < n && !c->ws) {
        const char *s = p + off, *v, *tn, *key;
        size_t avail = n - off;
        const char *e = memmem(s, avail < HEAD_MAX ? avail : HEAD_MAX, "\r\n\r\n", 4);
        if (!e) return avail >= HEAD_MAX ? -1 : (long)off;
        size_t hl = (size_t)(e - s) + 4;
        const char *rl = memmem(s, hl, "\r\n", 2); /* end of the request line */
        const char *sp1 = memchr(s, ' ', (size_t)(rl - s));
        const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(rl - sp1 - 1)) : NULL;
        if (!sp2 || rl - sp2 < 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) return -1;
        if (header(s, e, "Transfer-Encoding", &vl)) return -1; /* chunked: not what loadgen sends */
        clen = 0;
        if ((v = header(s, e, "Content-Length", &vl))) {
            if (vl < 1 || vl > 8) return -1;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9') return -1;
                clen = clen * 10 + (size_t)(v[i] - '0');
            }
            if (clen > BODY_MAX) return -1;
        }
        if (avail - hl < clen) return (long)off; /* the body is still coming: the head is parsed again then */
        off += hl + clen;
        const char *path = sp1 + 1;
        size_t pl = (size_t)(sp2 - path);
        int get = sp1 - s == 3 && memcmp(s, "GET", 3) == 0;
        if (sp1 - s == 4 && memcmp(s, "POST", 4) == 0) {
            if (!(tn = topic_of(path, pl, "/pub/", &tl))) return -1;
            if (ack_first && send_out(c, ok200, sizeof(ok200) - 1)) return -1;
            publish(tn, tl, s + hl, clen);
            if (!ack_first && send_out(c, ok200, sizeof(ok200) - 1)) return -1;
        } else if (get && (v = header(s, e, "Upgrade", &vl))) {
            key = header(s, e, "Sec-WebSocket-Key", &kl);
            if (vl != 9 || strncasecmp(v, "websocket", 9) != 0 || !key || kl < 1 || kl > 64 ||
                !(tn = topic_of(path, pl, "/sub/", &tl)) || upgrade(c, key, kl, tn, tl))
                return -1;
        } else if (!get || send_out(c, ok200, sizeof(ok200) - 1)) { /* GET /: the bench's "is it up?" */
            return -1;
        }
    }
    return (long)off;
}

/* Frames from a subscriber (loadgen sends none): skipped; a close frame ends the connection. */
static long ws_input(const char *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2) {
        const unsigned char *f = (const unsigned char *)p + off;
        size_t len = f[1] & 0x7f, hl = 2;
        if (len == 127) return -1;
        if (len == 126) {
            if (n - off < 4) break;
            len = (size_t)f[2] << 8 | f[3];
            hl = 4;
        }
        hl += f[1] & 0x80 ? 4 : 0;
        if (len > WS_IN_MAX || (f[0] & 0x0f) == 0x8) return -1;
        if (n - off < hl + len) break;
        off += hl + len;
    }
    return (long)off;
}

/* One read per readiness event (level-triggered: the rest comes on the next one). Input is
 * parsed straight from scratch; only an incomplete request or frame is kept per connection. */
static void on_read(conn_t *c)
{
    ssize_t r = read(c->fd, scratch, sizeof(scratch));
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r <= 0) goto drop;
    const char *p = scratch;
    size_t n = (size_t)r;
    if (c->ilen) {
        if (reserve(&c->in, &c->icap, c->ilen + n)) goto drop;
        memcpy(c->in + c->ilen, scratch, n);
        p = c->in;
        n = c->ilen += n;
    }
    long used = c->ws ? 0 : http_input(c, p, n), u2 = 0;
    if (used < 0 || (c->ws && (u2 = ws_input(p + used, n - (size_t)used)) < 0)) goto drop;
    size_t rest = n - (size_t)(used + u2);
    if (p == scratch && rest && reserve(&c->in, &c->icap, rest)) goto drop;
    if (rest)
        memmove(c->in, p + (n - rest), rest);
    c->ilen = rest;
    return;
drop: /* EOF, a socket error, or input we do not understand */
    close_conn(c);
}

static void accept_all(int ls)
{
    for (int fd; (fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
        conn_t *c = (size_t)fd < conns_max ? calloc(1, sizeof(*c)) : NULL;
        if (!c) {
            close(fd);
            continue;
        }
        int one = 1; /* as nginx and rtbroker: no Nagle delay on small frames */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->fd = fd;
        c->gen = next_gen++;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)c->gen << 32 | (uint32_t)fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
            close_conn(c);
    }
    /* EAGAIN, or out of descriptors: the listener stays ready and the next event retries */
}

static void on_stop(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *host = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) port = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--host") == 0) host = argv[++i];
        else if (strcmp(argv[i], "--ack-first") == 0) ack_first = 1;
        else port = -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1 || ntohl(sa.sin_addr.s_addr) >> 24 != 127) {
        fprintf(stderr, "usage: floor --port P [--host 127.x.y.z] [--ack-first]\n");
        return 2;
    }
    struct rlimit rl = {1024, 1024}; /* descriptors: as many as the hard limit allows */
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        getrlimit(RLIMIT_NOFILE, &rl);
    conns_max = rl.rlim_cur > (1u << 20) ? 1u << 20 : (size_t)rl.rlim_cur;
    conns = calloc(conns_max, sizeof(*conns));
    tab = calloc(tab_cap, sizeof(*tab));
    if (!conns || !tab) return 1;

    /* SIGTERM/SIGINT are delivered only inside epoll_pwait: no wake-up is lost */
    sigset_t block, during;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &during);
    for (int sig = SIGINT; sig; sig = sig == SIGINT ? SIGTERM : 0) {
        sigdelset(&during, sig);
        sigaction(sig, &(struct sigaction){.sa_handler = on_stop}, NULL);
    }
    signal(SIGPIPE, SIG_IGN);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct epoll_event lev = {.events = EPOLLIN, .data.u64 = LISTENER}, evs[256];
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 4096) != 0 ||
        (ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev) != 0) {
        perror("floor");
        return 1;
    }
    while (!stop) {
        int n = epoll_pwait(ep, evs, 256, -1, &during);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == LISTENER) {
                accept_all(ls);
                continue;
            }
            conn_t *c = conns[(uint32_t)evs[i].data.u64];
            if (!c || c->gen != (uint32_t)(evs[i].data.u64 >> 32))
                continue; /* closed earlier in this batch (its fd perhaps reused since) */
            if ((evs[i].events & EPOLLOUT) && flush_out(c) != 0)
                close_conn(c);
            else if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_read(c);
        }
    }
    return 0;
}
