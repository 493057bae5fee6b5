/*
 * loadgen — the load generator of `make bench` (tests/bench/run).
 *
 * One thread, one epoll loop. It opens N WebSocket (raw mode), SSE and long-poll
 * subscribers over T topics on `/sub/{topic}`, then publishes with keep-alive
 * `POST /pub/{topic}` connections, at a fixed total rate or as fast as the server
 * delivers (a closed loop: a topic's publisher waits while more than --max-lag
 * messages per subscriber are still on their way). Every payload carries
 *
 *     @B<topic>,<publisher>,<seq>,<send time in µs, CLOCK_MONOTONIC>#   then padding
 *
 * (seq counts per topic and publishing connection: one request in flight per
 * connection, so each such stream must arrive in order) and the subscribers read
 * payloads, not the servers' ids, so the same counting works for rtbroker and for
 * nginx + nchan. Per subscriber and stream a bitmap of the sequence numbers seen
 * gives exact loss, duplicates and reordering; latencies go to a log-linear
 * histogram (receive time = when epoll_wait returned the batch, so the load generator's
 * walk through a batch of ready sockets does not count). The server's memory (VmRSS and PSS, summed over the pids given) is read
 * before connecting, once connected and idle, and at the end; the kernel's TCP memory (/proc/net/sockstat) before
 * connecting and once idle.
 *
 * Long-poll follows each server's cursor protocol: rtbroker's JSON `cursor`
 * (`?cursor=ID`), nchan's `Last-Modified`/`Etag` (`If-Modified-Since`/`If-None-Match`).
 *
 * Everything is bounded: connecting (--connect-timeout), publishing (--duration and
 * --count), draining (--drain) and a hard alarm; the process stops by itself.
 * Exit status: 0, or 1 with --strict when anything was lost, duplicated, refused or
 * dropped; 2 on bad usage.
 *
 * Build: cc -std=gnu11 -O2 -Wall -Wextra -Werror -o build/bench/loadgen tests/bench/loadgen.c -lssl -lcrypto -lz -lm
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum kind { K_WS, K_SSE, K_LP, K_PUB };
static const char *const kind_name[] = {"websocket", "sse", "longpoll", "publisher"};

enum state {
    S_NEW,        /* not yet connecting */
    S_CONNECTING, /* connect() in progress */
    S_HEADERS,    /* request sent, waiting for the response head */
    S_BODY,       /* reading a response body (long-poll, publish) */
    S_OPEN,       /* WebSocket frames / SSE stream */
    S_IDLE,       /* publisher between requests */
    S_CLOSED,
};

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

typedef struct conn {
    int fd;
    uint8_t kind, state;
    uint8_t chunked, chunk_state, body_done, conn_close;
    uint8_t deflate, no_ctx, msg_rsv1, lp_primed, ready, counted, in_epollout;
    uint16_t close_code;
    int status;
    uint32_t topic, id;
    int64_t clen; /* remaining Content-Length, -1 when none */
    uint64_t chunk_left;
    buf_t in, out, body;
    size_t out_off;
    /* subscriber tracking */
    struct trk {
        uint64_t *seen;
        uint32_t words;
        uint64_t maxseq;
    } *trk; /* one per publisher (stream) */
    uint64_t distinct, dups, reorder, wrong;
    /* long-poll cursor */
    char *cursor, *etag;
    z_stream *zs;
    /* publisher */
    uint32_t slot, cur_topic;
    uint64_t cur_seq;
    double next_due, sent_at;
    char wskey[32];
} conn_t;

/* ---------------------------------------------------------------- options */

static struct {
    const char *host, *server, *pids, *prefix;
    int port, pub_port, nws, nsse, nlp, ntopics, npub, size, deflate, srcaddrs, srcbase, strict, quiet, conc;
    double rate, duration, drain, idle, connect_timeout, settle;
    long long count;
    int max_lag;
    const char *label;
} opt = {
    .host = "127.0.0.1", .server = "rtbroker", .pids = NULL, .prefix = NULL,
    .port = 8080, .ntopics = 1, .npub = 1, .size = 64, .srcaddrs = 16, .srcbase = 2, .conc = 256,
    .rate = 0, .duration = 3, .drain = 10, .idle = 0, .connect_timeout = 60, .settle = 0.5,
    .count = 100000000, .max_lag = 64, .label = "",
};
static int is_nchan;

/* ---------------------------------------------------------------- state */

static int ep;
static conn_t *conns;
static size_t nconns, nsubs;
static uint64_t *t_seq; /* [topic * npub + publisher] */
static uint64_t *t_sent, *t_acked, *t_deliv_open, *t_nopen, *t_failed;
static uint64_t n_connected, n_failed, n_dropped, n_pub_err, n_lp_err, n_lp_reconnect, n_ws_closed, n_masked;
static uint64_t n_deliv_kind[3], n_compressed, n_inflated; /* inflated: not found in the cache */
static uint64_t n_deliveries, n_unacked_seq, n_wrong_topic, n_published_sent;
static int publishing, pub_stopped;
static double t_pub_start, t_pub_end, t_first_deliv, t_last_deliv;
static char *pad_text;
static size_t pad_len;
static char scratch[1 << 18];
static unsigned char *zout;
static size_t zout_cap;
static int hard_deadline_hit;
/* When epoll_wait last returned: the receive time of what that batch reads, so that the
 * latency excludes the load generator's own walk through the batch (both servers alike). */
static uint64_t ev_now;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static void note(const char *fmt, ...)
{
    if (opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (b->p == NULL)
        die("out of memory");
    b->cap = cap;
}
static void buf_append(buf_t *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}
static void buf_free(buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}
static void buf_consume(buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        if (b->cap > 65536)
            buf_free(b);
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* ---------------------------------------------------------------- latency histogram (µs) */

#define HBUCKETS (128 + 58 * 64)
static uint64_t hist[HBUCKETS];
static uint64_t lat_max, lat_n;

static int hbucket(uint64_t v)
{
    if (v < 128)
        return (int)v;
    int e = 63 - __builtin_clzll(v);
    uint64_t m = v >> (e - 6);
    return 128 + (e - 7) * 64 + (int)(m - 64);
}
static double hvalue(int i) /* middle of the bucket */
{
    if (i < 128)
        return i;
    int e = (i - 128) / 64 + 7;
    uint64_t m = (uint64_t)((i - 128) % 64) + 64;
    double lo = (double)(m << (e - 6));
    double w = (double)(1ull << (e - 6));
    return lo + w / 2;
}
static double hquantile(double q)
{
    if (lat_n == 0)
        return NAN;
    uint64_t want = (uint64_t)ceil(q * (double)lat_n);
    if (want == 0)
        want = 1;
    uint64_t acc = 0;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += hist[i];
        if (acc >= want) {
            double v = hvalue(i);
            return v > (double)lat_max ? (double)lat_max : v;
        }
    }
    return (double)lat_max;
}

/* Counts of latencies below each edge (ms) and past the last one, for the report's histogram. */
static const double hist_edges_ms[] = {1, 2, 5, 10, 20, 50, 100, 200};
#define NHIST_EDGES (sizeof(hist_edges_ms) / sizeof(hist_edges_ms[0]))

static void hist_counts(uint64_t *out) /* NHIST_EDGES + 1 counts */
{
    memset(out, 0, (NHIST_EDGES + 1) * sizeof(*out));
    for (int i = 0; i < HBUCKETS; i++) {
        size_t k = 0;
        while (k < NHIST_EDGES && hvalue(i) >= hist_edges_ms[k] * 1000)
            k++;
        out[k] += hist[i];
    }
}

/* ---------------------------------------------------------------- memory of the server */

static int read_kb(const char *path, const char *key, long long *out)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    size_t kl = strlen(key);
    int ok = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0) {
            *out = atoll(line + kl);
            ok = 0;
            break;
        }
    }
    fclose(f);
    return ok;
}

/* Sums VmRSS and PSS (kB) over the pids in --pid (comma-separated). */
static int server_mem(long long *rss, long long *pss)
{
    *rss = *pss = 0;
    if (!opt.pids)
        return -1;
    char *list = strdup(opt.pids), *save = NULL;
    int ok = -1;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char path[64];
        long long v;
        snprintf(path, sizeof(path), "/proc/%s/status", t);
        if (read_kb(path, "VmRSS:", &v) == 0) {
            *rss += v;
            ok = 0;
        }
        snprintf(path, sizeof(path), "/proc/%s/smaps_rollup", t);
        if (read_kb(path, "Pss:", &v) == 0)
            *pss += v;
    }
    free(list);
    return ok;
}

/* Kernel memory of every TCP socket on the machine (kB): /proc/net/sockstat's `mem`, in pages. Both ends of
 * loopback connections count, and so does anything else running here. */
static long long tcp_mem_kb(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return -1;
    char line[256];
    long long pages = -1;
    while (fgets(line, sizeof(line), f)) {
        const char *m = strstr(line, " mem ");
        if (strncmp(line, "TCP:", 4) == 0 && m)
            pages = atoll(m + 5);
    }
    fclose(f);
    return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* CPU seconds (user + system; system alone in *sys) used so far by the pids in --pid. */
static double server_cpu(double *sys)
{
    *sys = NAN;
    if (!opt.pids)
        return NAN;
    char *list = strdup(opt.pids), *save = NULL;
    double sum = 0, ssum = 0;
    long tck = sysconf(_SC_CLK_TCK);
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char path[64], line[1024];
        snprintf(path, sizeof(path), "/proc/%s/stat", t);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(line, sizeof(line), f)) {
            const char *q = strrchr(line, ')'); /* fields after the command name */
            unsigned long ut = 0, st = 0;
            if (q && sscanf(q + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) == 2) {
                sum += (double)(ut + st) / (double)tck;
                ssum += (double)st / (double)tck;
            }
        }
        fclose(f);
    }
    free(list);
    *sys = ssum;
    return sum;
}

/* Write system calls (write, writev, send...) made so far by the pids in --pid (/proc/PID/io syscw). */
static double server_writes(void)
{
    if (!opt.pids)
        return NAN;
    char *list = strdup(opt.pids), *save = NULL;
    double sum = 0;
    int any = 0;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char path[64];
        long long v;
        snprintf(path, sizeof(path), "/proc/%s/io", t);
        if (read_kb(path, "syscw:", &v) == 0) {
            sum += (double)v;
            any = 1;
        }
    }
    free(list);
    return any ? sum : NAN;
}

static double self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

/* ---------------------------------------------------------------- sockets */

static void ep_mod(conn_t *c, int want_out)
{
    if (c->fd < 0 || (int)c->in_epollout == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u64 = (uint64_t)(c - conns)};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->in_epollout = (uint8_t)want_out;
}

static int open_socket(conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note("socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (opt.srcaddrs > 0) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl((127u << 24) | (uint32_t)(opt.srcbase + (int)(c->id % (uint32_t)opt.srcaddrs)));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            note("bind 127.0.0.%d: %s", opt.srcbase + (int)(c->id % (uint32_t)opt.srcaddrs), strerror(errno));
            close(fd);
            return -1;
        }
    }
    int port = c->kind == K_PUB ? opt.pub_port : opt.port; /* --pub-port: publish on another node */
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, opt.host, &dst.sin_addr) != 1)
        die("bad --host %s (an IPv4 address)", opt.host);
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) {
        note("connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = S_CONNECTING;
    c->in_epollout = 1;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u64 = (uint64_t)(c - conns)};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
    return 0;
}

static void close_fd(conn_t *c, int hard)
{
    if (c->fd < 0)
        return;
    if (hard) { /* RST: no TIME_WAIT left behind on the client side */
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->in_epollout = 0;
    buf_free(&c->in);
    buf_free(&c->out);
    c->out_off = 0;
}

static void flush_out(conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.p + c->out_off, c->out.len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return; /* the read side notices */
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out.len) {
        c->out.len = 0;
        c->out_off = 0;
        ep_mod(c, 0);
    } else {
        ep_mod(c, 1);
    }
}

static void send_bytes(conn_t *c, const void *p, size_t n)
{
    if (c->fd < 0)
        return;
    if (c->out.len == c->out_off) { /* nothing queued: write directly */
        c->out.len = c->out_off = 0;
        ssize_t w = write(c->fd, p, n);
        if (w < 0)
            w = 0;
        if ((size_t)w == n)
            return;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    buf_append(&c->out, p, n);
    ep_mod(c, 1);
}

/* ---------------------------------------------------------------- payloads */

static void make_pad(void)
{
    static const char *const words[] = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
                                        "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
                                        "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey",
                                        "xray", "yankee", "zulu", "price", "volume", "update", "status", "ok",
                                        "value", "room", "user", "message", "typing", "online", "offline"};
    size_t nw = sizeof(words) / sizeof(words[0]);
    pad_len = 1 << 17;
    pad_text = malloc(pad_len + 64);
    uint32_t x = 12345;
    size_t i = 0;
    while (i < pad_len) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % nw];
        size_t l = strlen(w);
        memcpy(pad_text + i, w, l);
        i += l;
        pad_text[i++] = (x >> 8) % 5 == 0 ? '.' : ' ';
        if ((x >> 4) % 7 == 0)
            i += (size_t)sprintf(pad_text + i, "%u ", (x >> 3) % 10000);
    }
}

/* Writes a payload of opt.size bytes (more if the marker alone is longer). */
static size_t make_payload(char *dst, uint32_t topic, uint32_t pub, uint64_t seq, uint64_t ts)
{
    int n = sprintf(dst, "@B%u,%u,%" PRIu64 ",%" PRIu64 "#", topic, pub, seq, ts);
    size_t len = (size_t)n;
    if ((size_t)opt.size > len) {
        size_t want = (size_t)opt.size - len;
        size_t off = (size_t)((seq * 7919u + topic * 104729u) % (pad_len - want - 1));
        memcpy(dst + len, pad_text + off, want);
        len += want;
    }
    return len;
}

static void record(conn_t *c, uint32_t topic, uint32_t pub, uint64_t seq, uint64_t ts, uint64_t now)
{
    n_deliveries++;
    n_deliv_kind[c->kind]++;
    double tn = (double)now * 1e-6;
    if (t_first_deliv == 0)
        t_first_deliv = tn;
    t_last_deliv = tn;
    if (topic != c->topic || topic >= (uint32_t)opt.ntopics || pub >= (uint32_t)opt.npub || seq == 0) {
        c->wrong++;
        n_wrong_topic++;
        return;
    }
    uint64_t lat = now > ts ? now - ts : 0;
    hist[hbucket(lat)]++;
    lat_n++;
    if (lat > lat_max)
        lat_max = lat;
    if (seq > t_seq[(size_t)topic * (size_t)opt.npub + pub]) {
        n_unacked_seq++; /* never sent: a corrupt payload */
        return;
    }
    if (!c->trk && !(c->trk = calloc((size_t)opt.npub, sizeof(*c->trk))))
        die("out of memory");
    struct trk *k = &c->trk[pub];
    uint64_t w = (seq - 1) >> 6;
    if (w >= k->words) {
        uint32_t nw = k->words ? k->words : 4;
        while (nw <= w)
            nw *= 2;
        k->seen = realloc(k->seen, nw * sizeof(uint64_t));
        if (!k->seen)
            die("out of memory");
        memset(k->seen + k->words, 0, (nw - k->words) * sizeof(uint64_t));
        k->words = nw;
    }
    uint64_t bit = 1ull << ((seq - 1) & 63);
    if (k->seen[w] & bit) {
        c->dups++;
        return;
    }
    k->seen[w] |= bit;
    c->distinct++;
    if (c->counted)
        t_deliv_open[topic]++;
    if (seq < k->maxseq)
        c->reorder++;
    else
        k->maxseq = seq;
}

static uint64_t parse_u(const char **pp, const char *end, int *ok)
{
    const char *p = *pp;
    uint64_t v = 0;
    int any = 0;
    while (p < end && *p >= '0' && *p <= '9') {
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
        any = 1;
    }
    *ok = any;
    *pp = p;
    return v;
}

/* Finds every complete marker in [p, p+n); returns how much may be discarded
 * (the start of a marker cut by the end of the data, else n). */
static size_t scan_markers(conn_t *c, const char *p, size_t n)
{
    const char *end = p + n, *s = p;
    uint64_t now = 0;
    while (s < end) {
        const char *a = memchr(s, '@', (size_t)(end - s));
        if (!a)
            return n;
        if (a + 1 >= end)
            return (size_t)(a - p);
        if (a[1] != 'B') {
            s = a + 1;
            continue;
        }
        const char *q = a + 2;
        int ok1, ok2, ok3, ok4;
        uint64_t topic = parse_u(&q, end, &ok1);
        if (q >= end)
            return (size_t)(a - p);
        if (!ok1 || *q != ',') {
            s = a + 1;
            continue;
        }
        q++;
        uint64_t pub = parse_u(&q, end, &ok4);
        if (q >= end)
            return (size_t)(a - p);
        if (!ok4 || *q != ',') {
            s = a + 1;
            continue;
        }
        q++;
        uint64_t seq = parse_u(&q, end, &ok2);
        if (q >= end)
            return (size_t)(a - p);
        if (!ok2 || *q != ',') {
            s = a + 1;
            continue;
        }
        q++;
        uint64_t ts = parse_u(&q, end, &ok3);
        if (q >= end)
            return (size_t)(a - p);
        if (!ok3 || *q != '#') {
            s = a + 1;
            continue;
        }
        if (!now)
            now = ev_now ? ev_now : now_us();
        record(c, (uint32_t)topic, (uint32_t)pub, seq, ts, now);
        s = q + 1;
    }
    return n;
}

/* ---------------------------------------------------------------- requests */

static void sub_mark_ready(conn_t *c)
{
    if (c->ready)
        return;
    c->ready = 1;
    n_connected++;
    if (!publishing) { /* open from before the first publish: counted in expected */
        c->counted = 1;
        t_nopen[c->topic]++;
    }
}

static void sub_lost(conn_t *c, const char *why)
{
    if (c->counted) {
        c->counted = 0;
        t_nopen[c->topic]--;
        t_deliv_open[c->topic] -= c->distinct;
    }
    if (!c->ready) {
        n_failed++;
        if (n_failed <= 5)
            note("%s subscriber %u on %s%u failed: %s", kind_name[c->kind], c->id, opt.prefix, c->topic, why);
    } else {
        n_dropped++;
        if (n_dropped <= 5)
            note("%s subscriber %u on %s%u dropped: %s", kind_name[c->kind], c->id, opt.prefix, c->topic, why);
    }
    c->state = S_CLOSED;
    close_fd(c, 1);
}

static void b64(const unsigned char *in, int n, char *out) { EVP_EncodeBlock((unsigned char *)out, in, n); }

static void send_ws_handshake(conn_t *c)
{
    unsigned char key[16];
    if (RAND_bytes(key, sizeof(key)) != 1)
        for (int i = 0; i < 16; i++)
            key[i] = (unsigned char)rand();
    b64(key, 16, c->wskey);
    char req[640];
    int n = snprintf(req, sizeof(req),
                     "GET /sub/%s%u HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     opt.prefix, c->topic, opt.host, opt.port, c->wskey,
                     opt.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits\r\n" : "");
    send_bytes(c, req, (size_t)n);
    c->state = S_HEADERS;
}

static void send_sse_request(conn_t *c)
{
    char req[400];
    int n = snprintf(req, sizeof(req),
                     "GET /sub/%s%u HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n",
                     opt.prefix, c->topic, opt.host, opt.port);
    send_bytes(c, req, (size_t)n);
    c->state = S_HEADERS;
}

static void send_poll(conn_t *c)
{
    char req[1024];
    int n;
    if (is_nchan) {
        n = snprintf(req, sizeof(req), "GET /sub/%s%u HTTP/1.1\r\nHost: %s:%d\r\n", opt.prefix, c->topic, opt.host,
                     opt.port);
        if (c->cursor)
            n += snprintf(req + n, sizeof(req) - (size_t)n, "If-Modified-Since: %s\r\n", c->cursor);
        if (c->etag)
            n += snprintf(req + n, sizeof(req) - (size_t)n, "If-None-Match: %s\r\n", c->etag);
        n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
        if (!c->lp_primed) { /* nchan_subscriber_first_message oldest on a fresh channel: no race */
            c->lp_primed = 1;
            sub_mark_ready(c);
        }
    } else if (!c->lp_primed) { /* timeout=0 answers at once with the current cursor */
        n = snprintf(req, sizeof(req), "GET /sub/%s%u?timeout=0 HTTP/1.1\r\nHost: %s:%d\r\n\r\n", opt.prefix, c->topic,
                     opt.host, opt.port);
    } else {
        n = snprintf(req, sizeof(req), "GET /sub/%s%u?cursor=%s&timeout=60 HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                     opt.prefix, c->topic, c->cursor ? c->cursor : "", opt.host, opt.port);
    }
    c->state = S_HEADERS;
    send_bytes(c, req, (size_t)n);
}

static conn_t **pubs;

static int lag_blocked(uint32_t t)
{
    if (opt.rate > 0 || t_nopen[t] == 0)
        return 0;
    if (t_deliv_open[t] >= t_sent[t] * t_nopen[t])
        return 0;
    uint64_t outstanding = t_sent[t] * t_nopen[t] - t_deliv_open[t];
    return outstanding > (uint64_t)opt.max_lag * t_nopen[t];
}

static void pub_try_send(conn_t *c, double now)
{
    if (!publishing || pub_stopped || c->state != S_IDLE || c->fd < 0)
        return;
    if ((long long)n_published_sent >= opt.count)
        return;
    if (opt.rate > 0 && now < c->next_due)
        return;
    uint32_t t;
    if (opt.npub <= opt.ntopics) { /* topic t is published by connection t % P */
        uint32_t owned = (uint32_t)((opt.ntopics - (int)c->id + opt.npub - 1) / opt.npub);
        t = c->id + (uint32_t)opt.npub * (c->slot % owned);
    } else { /* several connections per topic, each its own stream */
        t = c->id % (uint32_t)opt.ntopics;
    }
    if (lag_blocked(t))
        return;
    c->slot++;
    if (opt.rate > 0) {
        c->next_due += (double)opt.npub / opt.rate;
        if (c->next_due < now - 0.5) /* far behind: do not burst to catch up */
            c->next_due = now;
    }
    t_sent[t]++;
    uint64_t seq = ++t_seq[(size_t)t * (size_t)opt.npub + c->id];
    n_published_sent++;
    static char req[70000 + 512]; /* not scratch: this may run while scratch is being parsed */
    static char payload[70000];
    uint64_t ts = now_us();
    size_t plen = make_payload(payload, t, c->id, seq, ts);
    int n = snprintf(req, 512, "POST /pub/%s%u HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n\r\n", opt.prefix, t,
                     opt.host, opt.pub_port, plen);
    memcpy(req + n, payload, plen);
    c->cur_topic = t;
    c->cur_seq = seq;
    c->sent_at = now;
    c->state = S_HEADERS;
    send_bytes(c, req, (size_t)n + plen);
}

static uint64_t n_pub_conn_failed;

static void pub_lost(conn_t *c, const char *why)
{
    n_pub_conn_failed++;
    note("publisher %u: %s", c->id, why);
    close_fd(c, 0);
    c->state = S_CLOSED;
}

static void start_conn(conn_t *c)
{
    if (open_socket(c) != 0) {
        if (c->kind == K_PUB)
            pub_lost(c, "cannot connect");
        else
            sub_lost(c, "cannot connect");
    }
}

static void on_connected(conn_t *c)
{
    int err = 0;
    socklen_t l = sizeof(err);
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        if (c->kind == K_PUB)
            pub_lost(c, strerror(err));
        else
            sub_lost(c, strerror(err));
        return;
    }
    ep_mod(c, 0);
    switch (c->kind) {
    case K_WS: send_ws_handshake(c); break;
    case K_SSE: send_sse_request(c); break;
    case K_LP: send_poll(c); break;
    case K_PUB:
        c->state = S_IDLE;
        c->next_due = 0;
        break;
    }
}

/* ---------------------------------------------------------------- responses */

static const char *hdr_find(const char *h, size_t hl, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = h, *end = h + hl;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

static char *dupn(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Parses a response head; returns its length, 0 when incomplete, -1 when malformed. */
static long parse_head(conn_t *c, const char *p, size_t n)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    if (!e)
        return n > 65536 ? -1 : 0;
    size_t hl = (size_t)(e - p) + 4;
    if (n < 12 || strncmp(p, "HTTP/1.", 7) != 0)
        return -1;
    c->status = atoi(p + 9);
    size_t vl;
    const char *v;
    c->clen = -1;
    c->chunked = 0;
    c->chunk_state = 0;
    c->body_done = 0;
    c->conn_close = 0;
    if ((v = hdr_find(p, hl, "Content-Length", &vl)))
        c->clen = atoll(v);
    if ((v = hdr_find(p, hl, "Transfer-Encoding", &vl)) && vl >= 7 && strncasecmp(v + vl - 7, "chunked", 7) == 0)
        c->chunked = 1;
    if ((v = hdr_find(p, hl, "Connection", &vl)) && vl == 5 && strncasecmp(v, "close", 5) == 0)
        c->conn_close = 1;
    if (c->kind == K_WS && c->status == 101) {
        char expect[64];
        unsigned char sha[SHA_DIGEST_LENGTH];
        char src[96];
        snprintf(src, sizeof(src), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", c->wskey);
        SHA1((unsigned char *)src, strlen(src), sha);
        b64(sha, SHA_DIGEST_LENGTH, expect);
        v = hdr_find(p, hl, "Sec-WebSocket-Accept", &vl);
        if (!v || vl != strlen(expect) || memcmp(v, expect, vl) != 0)
            c->status = -101;
        v = hdr_find(p, hl, "Sec-WebSocket-Extensions", &vl);
        if (v && memmem(v, vl, "permessage-deflate", 18)) {
            c->deflate = 1;
            c->no_ctx = memmem(v, vl, "server_no_context_takeover", 26) != NULL;
        }
    }
    if (c->kind == K_LP && is_nchan) {
        if ((v = hdr_find(p, hl, "Last-Modified", &vl))) {
            free(c->cursor);
            c->cursor = dupn(v, vl);
        }
        if ((v = hdr_find(p, hl, "Etag", &vl))) {
            free(c->etag);
            c->etag = dupn(v, vl);
        }
    }
    if (c->status == 204 || c->status == 304 || c->status == 101)
        c->clen = c->chunked ? c->clen : 0;
    return (long)hl;
}

typedef void (*sink_fn)(conn_t *c, const char *p, size_t n);

/* Feeds response body bytes through the chunked decoder (or Content-Length) to sink;
 * returns the bytes consumed (the rest waits for more input). */
static size_t body_feed(conn_t *c, const char *p, size_t n, sink_fn sink)
{
    size_t off = 0;
    if (!c->chunked) {
        if (c->clen < 0) { /* until the connection closes */
            sink(c, p, n);
            return n;
        }
        size_t take = (size_t)c->clen < n ? (size_t)c->clen : n;
        if (take)
            sink(c, p, take);
        c->clen -= (int64_t)take;
        if (c->clen == 0)
            c->body_done = 1;
        return take;
    }
    while (off < n && !c->body_done) {
        switch (c->chunk_state) {
        case 0: { /* size line */
            const char *eol = memmem(p + off, n - off, "\r\n", 2);
            if (!eol)
                return off;
            c->chunk_left = strtoull(p + off, NULL, 16);
            off = (size_t)(eol - p) + 2;
            c->chunk_state = c->chunk_left ? 1 : 3;
            break;
        }
        case 1: { /* data */
            size_t take = c->chunk_left < n - off ? (size_t)c->chunk_left : n - off;
            sink(c, p + off, take);
            off += take;
            c->chunk_left -= take;
            if (c->chunk_left == 0)
                c->chunk_state = 2;
            break;
        }
        case 2: /* CRLF after data */
            if (n - off < 2)
                return off;
            off += 2;
            c->chunk_state = 0;
            break;
        case 3: { /* trailers until an empty line */
            const char *eol = memmem(p + off, n - off, "\r\n", 2);
            if (!eol)
                return off;
            size_t ll = (size_t)(eol - (p + off));
            off += ll + 2;
            if (ll == 0)
                c->body_done = 1;
            break;
        }
        }
    }
    return off;
}

static void sink_body(conn_t *c, const char *p, size_t n) { buf_append(&c->body, p, n); }

static void sink_sse(conn_t *c, const char *p, size_t n)
{
    if (c->body.len == 0) {
        size_t keep = scan_markers(c, p, n);
        if (keep < n)
            buf_append(&c->body, p + keep, n - keep);
        return;
    }
    buf_append(&c->body, p, n);
    size_t keep = scan_markers(c, c->body.p, c->body.len);
    buf_consume(&c->body, keep);
    if (c->body.len > 4096) /* a marker never gets that long: garbage */
        c->body.len = 0;
}

static void lp_done(conn_t *c)
{
    if (c->status >= 200 && c->status < 300) {
        scan_markers(c, c->body.p ? c->body.p : "", c->body.len);
        if (!is_nchan) {
            const char *k = c->body.p ? memmem(c->body.p, c->body.len, "\"cursor\":\"", 10) : NULL;
            if (k) {
                k += 10;
                const char *q = memchr(k, '"', c->body.len - (size_t)(k - c->body.p));
                if (q) {
                    free(c->cursor);
                    c->cursor = dupn(k, (size_t)(q - k));
                }
            }
            if (!c->lp_primed) {
                if (!c->cursor) {
                    sub_lost(c, "first poll gave no cursor");
                    return;
                }
                c->lp_primed = 1;
                sub_mark_ready(c);
            }
        }
    } else if (c->status != 304 && c->status != 408) {
        n_lp_err++;
        if (n_lp_err <= 5)
            note("long-poll %u: status %d: %.*s", c->id, c->status, (int)(c->body.len > 200 ? 200 : c->body.len),
                 c->body.p ? c->body.p : "");
        if (!c->lp_primed) {
            sub_lost(c, "long-poll refused");
            return;
        }
    }
    c->body.len = 0;
    if (c->conn_close) {
        n_lp_reconnect++;
        close_fd(c, 0);
        start_conn(c); /* on_connected sends the next poll */
        return;
    }
    send_poll(c);
}

static double pub_rtt_sum, pub_rtt_max;
static uint64_t pub_rtt_n;

static void pub_done(conn_t *c)
{
    double rtt = now_s() - c->sent_at;
    pub_rtt_sum += rtt;
    pub_rtt_n++;
    if (rtt > pub_rtt_max)
        pub_rtt_max = rtt;
    if (c->status >= 200 && c->status < 300) {
        t_acked[c->cur_topic]++;
    } else {
        n_pub_err++;
        t_failed[c->cur_topic]++;
        if (n_pub_err <= 5)
            note("publish to %s%u: status %d: %.*s", opt.prefix, c->cur_topic, c->status,
                 (int)(c->body.len > 200 ? 200 : c->body.len), c->body.p ? c->body.p : "");
    }
    c->body.len = 0;
    c->state = S_IDLE;
    if (c->conn_close) {
        close_fd(c, 0);
        start_conn(c);
        return;
    }
    pub_try_send(c, now_s());
}

/* ---------------------------------------------------------------- WebSocket frames */

static void ws_send_frame(conn_t *c, int op, const void *payload, size_t len)
{
    unsigned char f[8 + 125];
    if (len > 125)
        len = 125;
    f[0] = (unsigned char)(0x80 | op);
    f[1] = (unsigned char)(0x80 | len);
    uint32_t mask = (uint32_t)rand();
    memcpy(f + 2, &mask, 4);
    const unsigned char *pl = payload;
    for (size_t i = 0; i < len; i++)
        f[6 + i] = pl[i] ^ f[2 + (i & 3)];
    send_bytes(c, f, 6 + len);
}

/* Without context takeover every subscriber gets the same compressed bytes for a
 * message: inflate those once (the load generator must not be the bottleneck). The
 * table holds far more messages than can be in flight (per topic about --max-lag plus
 * its publishers), so that a deep publishing window does not turn every delivery into
 * an inflate. */
enum { ZC = 4096 };
static struct {
    char *in, *out;
    size_t inlen, outlen;
} zc[ZC];

static uint64_t zc_mix(uint64_t h, const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

static unsigned zc_slot(const char *p, size_t n)
{
    /* a dynamic Huffman block starts with tables that similar payloads share, so the first
     * bytes alone do not tell messages apart: hash the first KiB (where the payload's own
     * topic, publisher and sequence number are) in four independent lanes, then the tail */
    uint64_t h[4] = {0x9e3779b97f4a7c15ull ^ n, 1, 2, 3};
    size_t i = 0, head = n < 1024 ? n : 1024;
    for (; i + 32 <= head; i += 32)
        for (int l = 0; l < 4; l++)
            h[l] = zc_mix(h[l], p + i + 8 * l);
    for (; i + 8 <= head; i += 8)
        h[0] = zc_mix(h[0], p + i);
    for (i = n > 64 && n - 64 > i ? n - 64 : i; i + 8 <= n; i += 8)
        h[1] = zc_mix(h[1], p + i);
    for (; i < n; i++)
        h[2] = (h[2] ^ (unsigned char)p[i]) * 0x100000001b3ull;
    uint64_t x = h[0] ^ (h[1] * 3) ^ (h[2] * 5) ^ (h[3] * 7);
    return (unsigned)(x ^ (x >> 29)) % ZC;
}

static void ws_message(conn_t *c, const char *p, size_t n, int rsv1)
{
    if (!rsv1) {
        scan_markers(c, p, n);
        return;
    }
    if (!c->deflate) {
        sub_lost(c, "compressed frame without permessage-deflate");
        return;
    }
    n_compressed++;
    unsigned k = c->no_ctx ? zc_slot(p, n) : 0;
    if (c->no_ctx && zc[k].in && zc[k].inlen == n && memcmp(zc[k].in, p, n) == 0) {
        scan_markers(c, zc[k].out, zc[k].outlen);
        return;
    }
    if (!c->zs) {
        c->zs = calloc(1, sizeof(z_stream));
        if (inflateInit2(c->zs, -15) != Z_OK)
            die("inflateInit2");
    } else if (c->no_ctx) {
        inflateReset(c->zs);
    }
    n_inflated++;
    static const unsigned char tail[4] = {0, 0, 0xff, 0xff};
    size_t outlen = 0;
    for (int part = 0; part < 2; part++) {
        c->zs->next_in = part == 0 ? (unsigned char *)p : (unsigned char *)tail;
        c->zs->avail_in = part == 0 ? (uInt)n : 4;
        while (c->zs->avail_in > 0) {
            if (zout_cap - outlen < 4096) {
                zout_cap = zout_cap ? zout_cap * 2 : 1 << 17;
                zout = realloc(zout, zout_cap);
            }
            c->zs->next_out = zout + outlen;
            c->zs->avail_out = (uInt)(zout_cap - outlen);
            int rc = inflate(c->zs, Z_SYNC_FLUSH);
            outlen = zout_cap - c->zs->avail_out;
            if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) {
                sub_lost(c, "inflate failed");
                return;
            }
            if (rc == Z_BUF_ERROR && c->zs->avail_out > 0)
                break;
        }
    }
    if (c->no_ctx) {
        free(zc[k].in);
        free(zc[k].out);
        zc[k].in = dupn(p, n);
        zc[k].inlen = n;
        zc[k].out = dupn((const char *)zout, outlen);
        zc[k].outlen = outlen;
    }
    scan_markers(c, (const char *)zout, outlen);
}

static size_t ws_frames(conn_t *c, const char *p, size_t n)
{
    size_t off = 0;
    while (n - off >= 2 && c->fd >= 0) {
        const unsigned char *f = (const unsigned char *)p + off;
        int fin = f[0] & 0x80, rsv1 = f[0] & 0x40, op = f[0] & 0x0f, masked = f[1] & 0x80;
        uint64_t len = f[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (n - off < 4)
                break;
            len = ((uint64_t)f[2] << 8) | f[3];
            hl = 4;
        } else if (len == 127) {
            if (n - off < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | f[2 + i];
            hl = 10;
        }
        if (masked) {
            n_masked++;
            hl += 4;
        }
        if (len > (64u << 20)) {
            sub_lost(c, "frame too large");
            return n;
        }
        if (n - off < hl + len)
            break;
        const char *pl = p + off + hl;
        switch (op) {
        case 0x0:
            buf_append(&c->body, pl, (size_t)len);
            if (fin) {
                ws_message(c, c->body.p, c->body.len, c->msg_rsv1);
                c->body.len = 0;
            }
            break;
        case 0x1:
        case 0x2:
            if (fin) {
                ws_message(c, pl, (size_t)len, rsv1);
            } else {
                c->body.len = 0;
                c->msg_rsv1 = (uint8_t)(rsv1 != 0);
                buf_append(&c->body, pl, (size_t)len);
            }
            break;
        case 0x8:
            c->close_code = len >= 2 ? (uint16_t)(((unsigned char)pl[0] << 8) | (unsigned char)pl[1]) : 1005;
            n_ws_closed++;
            if (n_ws_closed <= 5)
                note("websocket %u closed by the server with code %u: %.*s", c->id, c->close_code,
                     len > 2 ? (int)len - 2 : 0, pl + 2);
            sub_lost(c, "close frame");
            return n;
        case 0x9: ws_send_frame(c, 0xA, pl, (size_t)len); break;
        default: break;
        }
        off += hl + (size_t)len;
    }
    return off;
}

/* ---------------------------------------------------------------- input */

/* Consumes what it can of [p, p+n); returns the count consumed. */
static size_t process(conn_t *c, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n && c->fd >= 0) {
        if (c->state == S_HEADERS) {
            long hl = parse_head(c, p + off, n - off);
            if (hl == 0)
                return off;
            if (hl < 0) {
                if (c->kind == K_PUB)
                    pub_lost(c, "malformed response");
                else
                    sub_lost(c, "malformed response");
                return n;
            }
            off += (size_t)hl;
            switch (c->kind) {
            case K_WS:
                if (c->status != 101) {
                    char why[64];
                    snprintf(why, sizeof(why), "handshake answered %d", c->status);
                    sub_lost(c, why);
                    return n;
                }
                c->state = S_OPEN;
                sub_mark_ready(c);
                break;
            case K_SSE:
                if (c->status != 200) {
                    char why[64];
                    snprintf(why, sizeof(why), "answered %d", c->status);
                    sub_lost(c, why);
                    return n;
                }
                c->state = S_OPEN;
                sub_mark_ready(c);
                break;
            default:
                c->state = S_BODY;
                c->body.len = 0;
                if (!c->chunked && c->clen == 0)
                    c->body_done = 1;
                break;
            }
        } else if (c->state == S_OPEN) {
            if (c->kind == K_WS)
                return off + ws_frames(c, p + off, n - off);
            size_t used = body_feed(c, p + off, n - off, sink_sse);
            off += used;
            if (c->body_done) {
                sub_lost(c, "stream ended");
                return n;
            }
            if (used == 0)
                return off;
        } else if (c->state == S_BODY) {
            if (!c->body_done) {
                size_t used = body_feed(c, p + off, n - off, sink_body);
                off += used;
                if (!c->body_done)
                    return off;
            }
            if (c->kind == K_LP)
                lp_done(c);
            else
                pub_done(c);
        } else {
            return n; /* bytes while idle: ignore */
        }
    }
    /* a body of length 0 completes without input */
    if (c->fd >= 0 && c->state == S_BODY && c->body_done) {
        if (c->kind == K_LP)
            lp_done(c);
        else
            pub_done(c);
    }
    return off;
}

static void on_readable(conn_t *c)
{
    ssize_t r = read(c->fd, scratch, sizeof(scratch));
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
    }
    if (r <= 0) {
        const char *why = r == 0 ? "connection closed by the server" : strerror(errno);
        if (c->kind == K_PUB) {
            if (c->state == S_HEADERS || c->state == S_BODY) {
                n_pub_err++;
                t_failed[c->cur_topic]++;
            }
            note("publisher connection lost (%s); reconnecting", why);
            close_fd(c, 0);
            c->state = S_NEW;
            start_conn(c);
            return;
        }
        if (c->kind == K_LP && c->ready && c->state == S_HEADERS && c->in.len == 0) {
            n_lp_reconnect++; /* keep-alive closed between polls */
            close_fd(c, 0);
            start_conn(c);
            return;
        }
        if (c->kind == K_SSE && c->state == S_OPEN && !c->chunked && c->clen < 0) {
            sub_lost(c, "stream ended");
            return;
        }
        sub_lost(c, why);
        return;
    }
    size_t n = (size_t)r;
    if (c->in.len) {
        buf_append(&c->in, scratch, n);
        size_t used = process(c, c->in.p, c->in.len);
        if (c->fd >= 0)
            buf_consume(&c->in, used);
    } else {
        size_t used = process(c, scratch, n);
        if (c->fd >= 0 && used < n)
            buf_append(&c->in, scratch + used, n - used);
    }
}

/* ---------------------------------------------------------------- main loop */

static void loop_once(int timeout_ms)
{
    struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    ev_now = now_us();
    for (int i = 0; i < n; i++) {
        conn_t *c = &conns[evs[i].data.u64];
        if (c->fd < 0)
            continue;
        if (c->state == S_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(c);
            continue;
        }
        if (evs[i].events & EPOLLOUT)
            flush_out(c);
        if (c->fd >= 0 && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            on_readable(c);
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    hard_deadline_hit = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen --port P [options]\n"
            "  --host A            server address (IPv4, default 127.0.0.1)\n"
            "  --pub-port P        publishers connect to port P (another node of a cluster; default --port)\n"
            "  --server S          rtbroker | nchan (the long-poll cursor protocol; default rtbroker) | floor\n"
            "                      (tests/bench/floor.c, WebSocket only: taken as rtbroker, named apart in RESULT)\n"
            "  --ws N --sse N --lp N   subscribers per transport (subscriber i is on topic i %% T)\n"
            "  --topics T          topics <prefix>0..<prefix>T-1 (default 1); --prefix S (default b<pid>t)\n"
            "  --publishers P      keep-alive publishing connections, one request in flight each: topic t is\n"
            "                      published by connection t %% P (P <= T), else connection p publishes topic p %% T\n"
            "  --rate R            total publishes per second; 0 = as fast as delivered (default 0)\n"
            "  --max-lag N         with --rate 0: at most N messages per subscriber in flight (default 64)\n"
            "  --count C           at most C publishes (default 1e8); --duration S publishing time (default 3)\n"
            "  --size B            payload bytes (default 64); --deflate offers permessage-deflate\n"
            "  --idle S            hold the subscribers idle S seconds before publishing (memory)\n"
            "  --settle S          pause after connecting (default 0.5)\n"
            "  --drain S           wait at most S seconds for deliveries after publishing (default 10)\n"
            "  --connect-timeout S at most S seconds to connect everyone (default 60)\n"
            "  --concurrency N     handshakes in progress at once (default 256)\n"
            "  --src-addrs K       source addresses 127.0.0.<base>..+K-1 (default 16; 0 = kernel's choice)\n"
            "  --src-base B        first source address's last byte (default 2)\n"
            "  --pid P[,P...]      server pids whose memory (VmRSS, PSS) is reported\n"
            "  --label L           name printed in the RESULT line\n"
            "  --strict            exit 1 on loss, duplicates, failed or dropped connections, publish errors\n"
            "  --quiet             fewer notes on stderr\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"host", 1, 0, 'h'},       {"port", 1, 0, 'p'},         {"server", 1, 0, 'S'},       {"ws", 1, 0, 'w'},
        {"sse", 1, 0, 'e'},        {"lp", 1, 0, 'l'},           {"topics", 1, 0, 't'},       {"publishers", 1, 0, 'P'},
        {"rate", 1, 0, 'r'},       {"count", 1, 0, 'c'},        {"duration", 1, 0, 'd'},     {"size", 1, 0, 's'},
        {"deflate", 0, 0, 'z'},    {"idle", 1, 0, 'i'},         {"drain", 1, 0, 'D'},        {"pid", 1, 0, 'm'},
        {"src-addrs", 1, 0, 'a'},  {"src-base", 1, 0, 'b'},     {"strict", 0, 0, 'x'},       {"quiet", 0, 0, 'q'},
        {"max-lag", 1, 0, 'L'},    {"connect-timeout", 1, 0, 'T'}, {"concurrency", 1, 0, 'C'}, {"settle", 1, 0, 'E'},
        {"prefix", 1, 0, 'F'},     {"label", 1, 0, 'N'},        {"pub-port", 1, 0, 'O'},     {"help", 0, 0, '?'},         {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'S': opt.server = optarg; break;
        case 'w': opt.nws = atoi(optarg); break;
        case 'e': opt.nsse = atoi(optarg); break;
        case 'l': opt.nlp = atoi(optarg); break;
        case 't': opt.ntopics = atoi(optarg); break;
        case 'P': opt.npub = atoi(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'c': opt.count = atoll(optarg); break;
        case 'd': opt.duration = atof(optarg); break;
        case 's': opt.size = atoi(optarg); break;
        case 'z': opt.deflate = 1; break;
        case 'i': opt.idle = atof(optarg); break;
        case 'D': opt.drain = atof(optarg); break;
        case 'm': opt.pids = optarg; break;
        case 'a': opt.srcaddrs = atoi(optarg); break;
        case 'b': opt.srcbase = atoi(optarg); break;
        case 'x': opt.strict = 1; break;
        case 'q': opt.quiet = 1; break;
        case 'L': opt.max_lag = atoi(optarg); break;
        case 'T': opt.connect_timeout = atof(optarg); break;
        case 'C': opt.conc = atoi(optarg); break;
        case 'E': opt.settle = atof(optarg); break;
        case 'F': opt.prefix = optarg; break;
        case 'N': opt.label = optarg; break;
        case 'O': opt.pub_port = atoi(optarg); break;
        default: usage();
        }
    }
    if (!opt.pub_port)
        opt.pub_port = opt.port;
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.pub_port < 0 || opt.pub_port > 65535 ||
        opt.ntopics < 1 || opt.npub < 1 || opt.size < 1 || opt.size > 65536 || opt.nws < 0 || opt.nsse < 0 || opt.nlp < 0 || opt.conc < 1 || opt.max_lag < 1 ||
        opt.srcaddrs < 0 || opt.srcbase < 1 || opt.srcbase + opt.srcaddrs > 255 || opt.duration < 0 || opt.count < 0)
        usage();
    if (!opt.prefix) { /* fresh topics on every run: nchan hands a new subscriber what its channel holds */
        static char pfx[32];
        snprintf(pfx, sizeof(pfx), "b%ut", (unsigned)getpid());
        opt.prefix = pfx;
    }
    for (const char *q = opt.prefix; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '_')
            die("--prefix: letters, digits and _ only (a topic both servers take)");
    if (strcmp(opt.server, "nchan") == 0)
        is_nchan = 1;
    else if (strcmp(opt.server, "rtbroker") != 0 && strcmp(opt.server, "floor") != 0)
        usage();

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    nsubs = (size_t)opt.nws + (size_t)opt.nsse + (size_t)opt.nlp;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && nsubs + (size_t)opt.npub + 16 > rl.rlim_cur)
        die("%zu connections need more open files than the limit %llu (ulimit -n)", nsubs + (size_t)opt.npub,
            (unsigned long long)rl.rlim_cur);
    /* a hard bound on the whole run, whatever the server does */
    double budget = opt.connect_timeout + opt.settle + opt.idle + opt.duration + opt.drain + 30;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)ceil(budget));

    make_pad();
    ep = epoll_create1(EPOLL_CLOEXEC);
    nconns = nsubs + (size_t)opt.npub;
    conns = calloc(nconns, sizeof(conn_t));
    size_t T = (size_t)opt.ntopics;
    t_sent = calloc(T, 8);
    t_seq = calloc(T * (size_t)opt.npub, 8);
    t_acked = calloc(T, 8);
    t_deliv_open = calloc(T, 8);
    t_nopen = calloc(T, 8);
    t_failed = calloc(T, 8);
    pubs = calloc((size_t)opt.npub, sizeof(*pubs));
    if (!conns || !t_seq || !t_sent || !t_acked || !t_deliv_open || !t_nopen || !t_failed || !pubs)
        die("out of memory");
    for (size_t i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->fd = -1;
        c->id = (uint32_t)i;
        if (i < (size_t)opt.nws)
            c->kind = K_WS;
        else if (i < (size_t)opt.nws + (size_t)opt.nsse)
            c->kind = K_SSE;
        else if (i < nsubs)
            c->kind = K_LP;
        else
            c->kind = K_PUB;
        if (c->kind == K_PUB) {
            c->id = (uint32_t)(i - nsubs);
            pubs[c->id] = c;
        } else {
            c->topic = (uint32_t)(i % T);
        }
    }

    long long rss0 = 0, pss0 = 0, rss1 = 0, pss1 = 0, rss2 = 0, pss2 = 0;
    int have_mem = server_mem(&rss0, &pss0) == 0;
    long long kmem0 = tcp_mem_kb(), kmem1 = -1;

    /* 1. connect: subscribers with bounded concurrency, then the publishers */
    double t0 = now_s();
    size_t next = 0;
    while (now_s() - t0 < opt.connect_timeout && !hard_deadline_hit) {
        size_t inprog = 0;
        for (size_t i = 0; i < next; i++)
            if (!conns[i].ready && conns[i].state != S_CLOSED)
                inprog++;
        while (next < nsubs && inprog < (size_t)opt.conc) {
            start_conn(&conns[next++]);
            inprog++;
        }
        if (next == nsubs && inprog == 0)
            break;
        loop_once(20);
    }
    double t_connected = now_s();
    for (size_t i = 0; i < nsubs; i++)
        if (!conns[i].ready && conns[i].state != S_CLOSED)
            sub_lost(&conns[i], "not connected in time");
    note("%" PRIu64 " of %zu subscribers connected in %.2f s (%" PRIu64 " failed)", n_connected, nsubs,
         t_connected - t0, n_failed);
    for (int i = 0; i < opt.npub; i++)
        start_conn(pubs[i]);
    for (double t = now_s(); now_s() - t < 10;) {
        int all = 1;
        for (int i = 0; i < opt.npub; i++)
            if (pubs[i]->state != S_IDLE && pubs[i]->state != S_CLOSED)
                all = 0;
        if (all)
            break;
        loop_once(10);
    }

    /* 2. settle (and idle), memory while idle */
    double until = now_s() + opt.settle + opt.idle;
    while (now_s() < until && !hard_deadline_hit)
        loop_once(20);
    if (have_mem)
        server_mem(&rss1, &pss1);
    kmem1 = tcp_mem_kb();

    /* 3. publish */
    publishing = 1;
    double srv_sys0, srv_cpu0 = server_cpu(&srv_sys0), self_cpu0 = self_cpu(), srv_writes0 = server_writes();
    t_pub_start = now_s();
    for (int i = 0; i < opt.npub; i++)
        pubs[i]->next_due = t_pub_start + (double)i / (opt.rate > 0 ? opt.rate : 1);
    double last_progress = t_pub_start;
    uint64_t last_deliv = 0;
    while (!hard_deadline_hit && opt.count > 0) {
        double now = now_s();
        if (now - t_pub_start >= opt.duration || (long long)n_published_sent >= opt.count)
            break;
        if (n_deliveries != last_deliv || n_published_sent == 0) {
            last_deliv = n_deliveries;
            last_progress = now;
        } else if (now - last_progress > 5 && opt.rate == 0) {
            note("no delivery for 5 s: stopping the publishers");
            break;
        }
        for (int i = 0; i < opt.npub; i++)
            pub_try_send(pubs[i], now);
        int to = 1;
        if (opt.rate > 0) {
            double due = 1e18;
            for (int i = 0; i < opt.npub; i++)
                if (pubs[i]->state == S_IDLE && pubs[i]->next_due < due)
                    due = pubs[i]->next_due;
            to = due > now ? (int)((due - now) * 1000) : 0;
            if (to > 10)
                to = 10;
        }
        loop_once(to);
    }
    pub_stopped = 1;
    t_pub_end = now_s();

    /* 4. drain: outstanding publish answers, then deliveries */
    uint64_t acked_total;
    double drain_start = now_s(), quiet_since = drain_start;
    uint64_t seen_deliv = n_deliveries;
    for (;;) {
        int inflight = 0;
        for (int i = 0; i < opt.npub; i++)
            if (pubs[i]->state == S_HEADERS || pubs[i]->state == S_BODY)
                inflight = 1;
        uint64_t expected = 0, got = 0;
        for (size_t i = 0; i < nsubs; i++)
            if (conns[i].counted) {
                expected += t_acked[conns[i].topic];
                got += conns[i].distinct;
            }
        double now = now_s();
        if (n_deliveries != seen_deliv) {
            seen_deliv = n_deliveries;
            quiet_since = now;
        }
        if (!inflight && got >= expected)
            break;
        if (now - drain_start > opt.drain || now - quiet_since > (opt.rate > 0 ? 3.0 : 2.0) || hard_deadline_hit)
            break;
        loop_once(10);
    }
    double t_end = now_s();
    double srv_writes = server_writes() - srv_writes0;
    double srv_sys1, srv_cpu1 = server_cpu(&srv_sys1);
    double srv_cpu = (srv_cpu1 - srv_cpu0) / (t_end - t_pub_start);
    double srv_sys_share = srv_cpu1 - srv_cpu0 > 0 ? (srv_sys1 - srv_sys0) / (srv_cpu1 - srv_cpu0) : NAN;
    double lg_cpu = (self_cpu() - self_cpu0) / (t_end - t_pub_start);
    if (have_mem)
        server_mem(&rss2, &pss2);

    /* 5. report */
    acked_total = 0;
    uint64_t failed_total = 0;
    for (size_t t = 0; t < T; t++) {
        acked_total += t_acked[t];
        failed_total += t_failed[t];
    }
    uint64_t expected = 0, distinct = 0, dups = 0, reorder = 0, lost = 0;
    uint64_t bad_topics = 0, lost_kind[3] = {0, 0, 0};
    uint64_t *tl = calloc(T, 8), *td = calloc(T, 8), *tr = calloc(T, 8);
    for (size_t i = 0; i < nsubs; i++) {
        conn_t *c = &conns[i];
        dups += c->dups;
        reorder += c->reorder;
        td[c->topic] += c->dups;
        tr[c->topic] += c->reorder;
        if (!c->counted)
            continue;
        uint64_t e = t_acked[c->topic];
        expected += e;
        distinct += c->distinct;
        if (c->distinct < e) {
            lost += e - c->distinct;
            lost_kind[c->kind] += e - c->distinct;
            tl[c->topic] += e - c->distinct;
        }
    }
    for (size_t t = 0; t < T; t++)
        if (tl[t] || td[t] || tr[t])
            bad_topics++;
    double win = (t_last_deliv > 0 ? t_last_deliv : t_pub_end) - t_pub_start;
    if (win <= 0)
        win = 1e-9;
    double deliv_rate = (double)n_deliveries / win;
    double pub_rate = (double)acked_total / (t_pub_end - t_pub_start > 0 ? t_pub_end - t_pub_start : 1e-9);
    long long nconn = (long long)n_connected;
    double per_conn = nconn > 0 && have_mem ? (double)(pss1 - pss0) * 1024.0 / (double)nconn : NAN;
    double per_conn_rss = nconn > 0 && have_mem ? (double)(rss1 - rss0) * 1024.0 / (double)nconn : NAN;
    double kper_conn = nconn > 0 && kmem0 >= 0 && kmem1 >= 0 ? (double)(kmem1 - kmem0) * 1024.0 / (double)nconn : NAN;
    uint64_t hc[NHIST_EDGES + 1];
    hist_counts(hc);
    char hist_txt[256] = "", hist_line[512] = "";
    for (size_t k = 0, off = 0, loff = 0; k <= NHIST_EDGES; k++) {
        off += (size_t)snprintf(hist_txt + off, sizeof(hist_txt) - off, "%s%" PRIu64, k ? "," : "", hc[k]);
        char edge[32];
        if (k < NHIST_EDGES)
            snprintf(edge, sizeof(edge), "<%g", hist_edges_ms[k]);
        else
            snprintf(edge, sizeof(edge), ">=%g", hist_edges_ms[k - 1]);
        loff += (size_t)snprintf(hist_line + loff, sizeof(hist_line) - loff, "  %s %.2f%%", edge,
                                 lat_n ? 100.0 * (double)hc[k] / (double)lat_n : 0.0);
    }

    printf("loadgen %s: server %s port %d, %d ws + %d sse + %d lp subscribers over %d topics, %d publishers, "
           "rate %s, %d-byte payloads%s\n",
           opt.label, opt.server, opt.port, opt.nws, opt.nsse, opt.nlp, opt.ntopics, opt.npub,
           opt.rate > 0 ? "fixed" : "as fast as delivered", opt.size, opt.deflate ? ", permessage-deflate offered" : "");
    printf("  connections: %" PRIu64 " made, %" PRIu64 " failed, %" PRIu64 " dropped (%" PRIu64
           " closed by the server), connect time %.2f s\n",
           n_connected, n_failed, n_dropped, n_ws_closed, t_connected - t0);
    printf("  published:   %" PRIu64 " acknowledged, %" PRIu64 " refused or lost, %.0f/s over %.2f s; "
           "answered in %.3f ms on average, %.3f ms at most\n",
           acked_total, failed_total, pub_rate, t_pub_end - t_pub_start,
           pub_rtt_n ? pub_rtt_sum / (double)pub_rtt_n * 1000 : 0.0, pub_rtt_max * 1000);
    printf("  delivered:   %" PRIu64 " expected, %" PRIu64 " distinct, %" PRIu64 " in all; %.0f msg/s over %.2f s\n",
           expected, distinct, n_deliveries, deliv_rate, win);
    printf("  checks:      lost %" PRIu64 ", duplicates %" PRIu64 ", reordered %" PRIu64 ", wrong topic %" PRIu64
           ", topics with anomalies %" PRIu64 "\n",
           lost, dups, reorder, n_wrong_topic, bad_topics);
    if (n_lp_err || n_lp_reconnect)
        printf("  long-poll:   %" PRIu64 " error answers, %" PRIu64 " reconnects\n", n_lp_err, n_lp_reconnect);
    printf("  latency ms:  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%" PRIu64 " samples)\n",
           hquantile(0.5) / 1000, hquantile(0.9) / 1000, hquantile(0.99) / 1000, hquantile(0.999) / 1000,
           (double)lat_max / 1000, lat_n);
    if (lat_n)
        printf("  histogram ms:%s\n", hist_line);
    printf("  cpu:         server %.0f%% (%.0f%% of it in the kernel), load generator %.0f%% of one core while "
           "publishing and draining\n",
           srv_cpu * 100, srv_sys_share * 100, lg_cpu * 100);
    if (n_deliveries)
        printf("  writes:      the server made %.0f write system calls, %.3f per delivered message\n", srv_writes,
               srv_writes / (double)n_deliveries);
    if (have_mem)
        printf("  server mem:  before %lld kB RSS (%lld PSS), connected+idle %lld kB (%lld), end %lld kB (%lld); "
               "per connection %.0f B PSS (%.0f B RSS)\n",
               rss0, pss0, rss1, pss1, rss2, pss2, per_conn, per_conn_rss);
    if (kmem0 >= 0 && kmem1 >= 0)
        printf("  kernel mem:  TCP sockets of the machine (/proc/net/sockstat mem, both ends of loopback) before %lld kB, "
               "connected+idle %lld kB; per connection %.0f B\n",
               kmem0, kmem1, kper_conn);
    int shown = 0;
    for (size_t t = 0; t < T && shown < 10; t++)
        if (tl[t] || td[t] || tr[t]) {
            printf("  topic %s%zu: published %" PRIu64 ", lost %" PRIu64 ", duplicates %" PRIu64 ", reordered %" PRIu64
                   "\n",
                   opt.prefix, t, t_acked[t], tl[t], td[t], tr[t]);
            shown++;
        }
    int bad = lost || dups || n_failed || n_dropped || failed_total || n_wrong_topic || hard_deadline_hit ||
              n_pub_conn_failed || n_unacked_seq;
    if (lost)
        printf("  lost by transport: websocket %" PRIu64 ", sse %" PRIu64 ", long-poll %" PRIu64 "\n", lost_kind[K_WS],
               lost_kind[K_SSE], lost_kind[K_LP]);
    if (lost || dups || n_wrong_topic)
        printf("!!! LOSS OR DUPLICATES: %" PRIu64 " lost, %" PRIu64 " duplicated, %" PRIu64 " on a wrong topic !!!\n",
               lost, dups, n_wrong_topic);
    if (n_failed || n_dropped)
        printf("!!! CONNECTIONS: %" PRIu64 " failed, %" PRIu64 " dropped !!!\n", n_failed, n_dropped);
    if (failed_total)
        printf("!!! PUBLISH ERRORS: %" PRIu64 " !!!\n", failed_total);
    if (n_pub_conn_failed)
        printf("!!! PUBLISHER CONNECTIONS FAILED: %" PRIu64 " !!!\n", n_pub_conn_failed);
    if (n_unacked_seq)
        printf("!!! %" PRIu64 " payloads with a sequence number never sent !!!\n", n_unacked_seq);
    if (hard_deadline_hit)
        printf("!!! the run hit its time bound !!!\n");
    printf("RESULT label=%s server=%s subs=%zu connected=%" PRIu64 " failed=%" PRIu64 " dropped=%" PRIu64
           " published=%" PRIu64 " pub_errors=%" PRIu64 " expected=%" PRIu64 " delivered=%" PRIu64
           " deliveries=%" PRIu64 " lost=%" PRIu64 " dups=%" PRIu64 " reordered=%" PRIu64 " rate=%.0f pub_rate=%.0f"
           " p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f mem_idle_kb=%lld mem_conn_kb=%lld"
           " mem_end_kb=%lld rss_idle_kb=%lld rss_conn_kb=%lld per_conn_b=%.0f per_conn_rss_b=%.0f srv_cpu=%.2f srv_sys_share=%.2f lg_cpu=%.2f pub_rtt_ms=%.3f deliv_ws=%" PRIu64 " deliv_sse=%" PRIu64
           " deliv_lp=%" PRIu64 " compressed=%" PRIu64 " inflated=%" PRIu64 " writes_per_deliv=%.3f"
           " kmem_idle_kb=%lld kmem_conn_kb=%lld kper_conn_b=%.0f hist_ms=%s ok=%d\n",
           opt.label[0] ? opt.label : "-", opt.server, nsubs, n_connected, n_failed, n_dropped, acked_total,
           failed_total, expected, distinct, n_deliveries, lost, dups, reorder, deliv_rate, pub_rate,
           hquantile(0.5) / 1000, hquantile(0.9) / 1000, hquantile(0.99) / 1000, hquantile(0.999) / 1000,
           (double)lat_max / 1000, pss0, pss1, pss2, rss0, rss1, per_conn, per_conn_rss, srv_cpu, srv_sys_share, lg_cpu,
           pub_rtt_n ? pub_rtt_sum / (double)pub_rtt_n * 1000 : 0.0, n_deliv_kind[K_WS], n_deliv_kind[K_SSE],
           n_deliv_kind[K_LP], n_compressed, n_inflated, n_deliveries ? srv_writes / (double)n_deliveries : NAN, kmem0,
           kmem1, kper_conn, hist_txt, !bad);
    fflush(stdout);

    for (size_t i = 0; i < nconns; i++) { /* free everything: a sanitized build checks for leaks */
        conn_t *c = &conns[i];
        close_fd(c, c->kind != K_PUB);
        buf_free(&c->body);
        if (c->trk)
            for (int k = 0; k < opt.npub; k++)
                free(c->trk[k].seen);
        free(c->trk);
        free(c->cursor);
        free(c->etag);
        if (c->zs) {
            inflateEnd(c->zs);
            free(c->zs);
        }
    }
    for (int i = 0; i < ZC; i++) {
        free(zc[i].in);
        free(zc[i].out);
    }
    free(zout);
    free(pad_text);
    free(tl);
    free(td);
    free(tr);
    free(conns);
    free(pubs);
    free(t_seq);
    free(t_sent);
    free(t_acked);
    free(t_deliv_open);
    free(t_nopen);
    free(t_failed);
    close(ep);
    return opt.strict && bad ? 1 : 0;
}
