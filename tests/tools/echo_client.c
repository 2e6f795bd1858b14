/*
 * echo_client - load/correctness client for echo_server (poolshim tests).
 *
 * Usage:
 *   echo_client --port P [--host ADDR] [--family 4|6] [--requests N]
 *               [--threads T] [--mode cycle|keepalive|greet|tls]
 *               [--nonblock] [--cloexec] [--close-after-first] [--split-write]
 *               [--bind ADDR] [--sleep-ms N] [--quiet]
 *
 *   --host      default 127.0.0.1 (::1 with --family 6). Without --family the
 *               family follows the address (a ':' means IPv6), so
 *               "--host ::ffff:127.0.0.1" reaches an IPv4 server from an
 *               AF_INET6 socket.
 *   --requests  per thread (default 1); --threads default 1; total = T*N.
 *   --nonblock  SOCK_NONBLOCK: connect may return EINPROGRESS (completed with
 *               poll POLLOUT + SO_ERROR), reads/writes poll on EAGAIN.
 *   --cloexec   SOCK_CLOEXEC.
 *   --bind ADDR bind(ADDR, port 0) before every connect.
 *   --sleep-ms  pause between consecutive requests of a thread.
 *   --close-after-first  against a split server: close after the first line
 *               of the answer, leaving the tail in flight (cycle/greet only).
 *   --split-write  each request in two writes ("REQ " and the rest).
 *   --quiet     no per-error lines on stderr (the summary is still printed).
 *
 * Modes: every request sends "REQ <tid>-<i>-<random>\n" (a unique token) and
 * expects "RSP <token> <connid>\n".
 *   cycle      (default) socket, [bind], connect, write, read, close per
 *              request: the pattern poolshim accelerates.
 *   keepalive  one connection per thread for all its requests: the ceiling.
 *              After an error or mismatch the thread reconnects.
 *   greet      like cycle, but first reads "HELLO <id>\n" (3 s timeout, else
 *              error "no greeting"); the RSP connid must equal that id.
 *   tls        like cycle, but sends a fake TLS record (16 03 01 ...) and
 *              expects the two bytes 15 03 back (server --mode tls).
 * A split answer ("RSP <token> <connid> part1\n") is recognised by its
 * suffix and then "tail <token>\n" is read too, unless --close-after-first.
 *
 * Output (stdout), at the end:
 *   local=<addr>:<port> or local=[<addr6>]:<port>   only with --bind: the
 *        local address of the last connection made (getsockname() right
 *        after each connect), "local=none" if no connect succeeded
 *   requests=<total> ok=<ok> mismatches=<m> errors=<e> elapsed_ms=<ms> rps=<r>
 * Each request is counted in exactly one of ok, mismatches (an answer that
 * does not match the request) and errors (syscall failure, timeout, EOF,
 * close() failing). Errors and mismatches print one line each on stderr, at
 * most 10, then a single "further errors suppressed" line.
 * Exit status: 0 iff mismatches == 0 and errors == 0; 2 on usage errors.
 *
 * Every wait is a poll() with a deadline (5 s per request phase), so a test
 * never hangs. SIGPIPE is ignored: a write to a dead connection is an error
 * to count, not a crash.
 */
#include "monotonic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum cmode { C_CYCLE, C_KEEPALIVE, C_GREET, C_TLS };
enum outcome { OUT_OK, OUT_MISMATCH, OUT_ERROR };

#define IO_TIMEOUT_MS 5000
#define GREET_TIMEOUT_MS 3000
#define MAX_REPORTS 10
#define LINE_MAX_LEN 256

static struct {
    int port;
    const char *host;
    int family; /* 0 until chosen */
    long requests;
    int threads;
    enum cmode mode;
    bool nonblock, cloexec, close_after_first, split_write, quiet;
    const char *bind_addr;
    int sleep_ms;
} opt = { .requests = 1, .threads = 1 };

static struct sockaddr_storage dst_addr, bind_ss;
static socklen_t dst_len, bind_len;

static atomic_int n_reports;
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_local[80];

struct reader {
    int fd;
    size_t have;
    char buf[LINE_MAX_LEN];
};

struct worker {
    pthread_t th;
    int tid;
    uint64_t rng;
    long ok, mismatches, errors;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_client --port P [--host ADDR] [--family 4|6] "
            "[--requests N] [--threads T]\n"
            "                   [--mode cycle|keepalive|greet|tls] [--nonblock] "
            "[--cloexec]\n"
            "                   [--close-after-first] [--split-write] [--bind ADDR] "
            "[--sleep-ms N] [--quiet]\n");
    exit(2);
}

static long parse_long(const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage();
    return v;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    for (int i = 0; i < 1000 && nanosleep(&ts, &ts) == -1 && errno == EINTR; i++)
        ;
}

static void report(const struct worker *w, long i, const char *fmt, ...)
{
    if (opt.quiet)
        return;
    int n = atomic_fetch_add(&n_reports, 1);
    if (n > MAX_REPORTS)
        return;
    if (n == MAX_REPORTS) {
        fprintf(stderr, "echo_client: further errors suppressed\n");
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "echo_client: thread %d request %ld: %s\n", w->tid, i, msg);
}

static uint64_t next_rand(struct worker *w)
{
    /* xorshift64*: enough to keep tokens unique across runs and threads */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * UINT64_C(0x2545F4914F6CDD1D);
}

/* Waits for events until deadline; on timeout returns -1 with ETIMEDOUT. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (int i = 0; i < 1000; i++) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            break;
        struct pollfd p = { .fd = fd, .events = events };
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0; /* readiness or POLLERR/POLLHUP: the I/O call reports */
        if (r < 0 && errno != EINTR)
            return -1;
    }
    errno = ETIMEDOUT;
    return -1;
}

static int write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    const char *p = buf;
    for (int i = 0; len > 0 && i < 10000; i++) {
        ssize_t n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN && opt.nonblock) {
            if (wait_fd(fd, POLLOUT, deadline) < 0)
                return -1;
            continue;
        }
        if (n == 0)
            errno = EIO;
        return -1;
    }
    return len == 0 ? 0 : -1;
}

/*
 * Reads one line (without '\n') into out. Returns its length, or -1 with
 * errno set (ETIMEDOUT, EMSGSIZE for an overlong line, ECONNABORTED for EOF).
 * Only what has arrived is read, and the server sends nothing beyond the
 * lines we wait for, so bytes are never consumed ahead of the protocol.
 */
static int read_line(struct reader *r, char *out, int64_t deadline)
{
    for (int i = 0; i < 10000; i++) {
        char *nl = memchr(r->buf, '\n', r->have);
        if (nl) {
            size_t len = (size_t)(nl - r->buf);
            memcpy(out, r->buf, len);
            out[len] = '\0';
            r->have -= len + 1;
            memmove(r->buf, nl + 1, r->have);
            return (int)len;
        }
        if (r->have == sizeof r->buf) {
            errno = EMSGSIZE;
            return -1;
        }
        /* Blocking sockets poll first, so a silent peer cannot hang us. */
        if (!opt.nonblock && wait_fd(r->fd, POLLIN, deadline) < 0)
            return -1;
        ssize_t n = read(r->fd, r->buf + r->have, sizeof r->buf - r->have);
        if (n > 0) {
            r->have += (size_t)n;
            continue;
        }
        if (n == 0) {
            errno = ECONNABORTED;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && opt.nonblock) {
            if (wait_fd(r->fd, POLLIN, deadline) < 0)
                return -1;
            continue;
        }
        return -1;
    }
    errno = ETIMEDOUT;
    return -1;
}

static const char *err_name(int e)
{
    return e == ECONNABORTED ? "unexpected EOF" : strerror(e);
}

static void note_local(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN], text[sizeof last_local];
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        snprintf(text, sizeof text, "[%s]:%u", host, ntohs(a->sin6_port));
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        snprintf(text, sizeof text, "%s:%u", host, ntohs(a->sin_port));
    }
    pthread_mutex_lock(&local_lock);
    memcpy(last_local, text, sizeof text);
    pthread_mutex_unlock(&local_lock);
}

/* Returns a connected fd, or -1 after reporting the failing step. */
static int open_conn(struct worker *w, long i)
{
    int type = SOCK_STREAM | (opt.nonblock ? SOCK_NONBLOCK : 0) |
               (opt.cloexec ? SOCK_CLOEXEC : 0);
    int fd = socket(opt.family, type, 0);
    if (fd < 0) {
        report(w, i, "socket: %s", strerror(errno));
        return -1;
    }
    if (opt.bind_addr && bind(fd, (struct sockaddr *)&bind_ss, bind_len) < 0) {
        report(w, i, "bind %s: %s", opt.bind_addr, strerror(errno));
        goto fail;
    }
    if (connect(fd, (struct sockaddr *)&dst_addr, dst_len) < 0) {
        if (!(opt.nonblock && errno == EINPROGRESS)) {
            report(w, i, "connect: %s", strerror(errno));
            goto fail;
        }
        if (wait_fd(fd, POLLOUT, now_ms() + IO_TIMEOUT_MS) < 0) {
            report(w, i, "connect wait: %s", strerror(errno));
            goto fail;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
            report(w, i, "connect SO_ERROR: %s", strerror(soerr ? soerr : errno));
            goto fail;
        }
    }
    if (opt.bind_addr)
        note_local(fd);
    return fd;
fail:
    close(fd);
    return -1;
}

/* Parses "<prefix><digits>[<suffix>]" and returns the number, or -1. */
static long parse_id(const char *s, const char *prefix, const char **rest)
{
    size_t pl = strlen(prefix);
    if (strncmp(s, prefix, pl) != 0)
        return -1;
    s += pl;
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno)
        return -1;
    *rest = end;
    return v;
}

/*
 * One request/answer exchange on an open connection. greet_id is the id
 * from the HELLO line (or -1) that the answer's connid must repeat.
 */
static enum outcome exchange(struct worker *w, struct reader *r, long i,
                             long greet_id)
{
    char token[96], req[128], line[LINE_MAX_LEN + 1], prefix[128];
    int64_t deadline = now_ms() + IO_TIMEOUT_MS;

    snprintf(token, sizeof token, "%d-%ld-%016llx", w->tid, i,
             (unsigned long long)next_rand(w));
    int n = snprintf(req, sizeof req, "REQ %s\n", token);
    /* --split-write: "REQ " then the rest, as http.client sends headers
     * and body in two writes */
    if (opt.split_write && write_all(r->fd, req, 4, deadline) < 0) {
        report(w, i, "write: %s", strerror(errno));
        return OUT_ERROR;
    }
    if (write_all(r->fd, req + (opt.split_write ? 4 : 0), (size_t)n - (opt.split_write ? 4 : 0),
                  deadline) < 0) {
        report(w, i, "write: %s", strerror(errno));
        return OUT_ERROR;
    }
    if (read_line(r, line, deadline) < 0) {
        report(w, i, "read answer: %s", err_name(errno));
        return OUT_ERROR;
    }
    snprintf(prefix, sizeof prefix, "RSP %s ", token);
    const char *rest;
    long connid = parse_id(line, prefix, &rest);
    bool split = connid >= 0 && strcmp(rest, " part1") == 0;
    if (connid < 0 || (*rest && !split)) {
        report(w, i, "mismatch: sent \"%s\", got \"%s\"", token, line);
        return OUT_MISMATCH;
    }
    if (greet_id >= 0 && connid != greet_id) {
        report(w, i, "mismatch: greeted as %ld, answered as %ld", greet_id, connid);
        return OUT_MISMATCH;
    }
    if (!split || opt.close_after_first)
        return OUT_OK;
    if (read_line(r, line, deadline) < 0) {
        report(w, i, "read tail: %s", err_name(errno));
        return OUT_ERROR;
    }
    snprintf(prefix, sizeof prefix, "tail %s", token);
    if (strcmp(line, prefix) != 0) {
        report(w, i, "mismatch: expected \"%s\", got \"%s\"", prefix, line);
        return OUT_MISMATCH;
    }
    return OUT_OK;
}

static enum outcome tls_probe(struct worker *w, int fd, long i)
{
    /* A TLS handshake record header followed by a few body bytes. */
    static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0x05,
                                           0x01, 0x00, 0x00, 0x01, 0x00 };
    int64_t deadline = now_ms() + IO_TIMEOUT_MS;
    struct reader r = { .fd = fd };
    if (write_all(fd, hello, sizeof hello, deadline) < 0) {
        report(w, i, "write: %s", strerror(errno));
        return OUT_ERROR;
    }
    for (int k = 0; k < 100 && r.have < 2; k++) {
        if (wait_fd(fd, POLLIN, deadline) < 0) {
            report(w, i, "read alert: %s", strerror(errno));
            return OUT_ERROR;
        }
        ssize_t n = read(fd, r.buf + r.have, 2 - r.have);
        if (n > 0)
            r.have += (size_t)n;
        else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
            report(w, i, "read alert: %s", n == 0 ? "unexpected EOF" : strerror(errno));
            return OUT_ERROR;
        }
    }
    if (r.have < 2) {
        report(w, i, "read alert: %s", strerror(ETIMEDOUT));
        return OUT_ERROR;
    }
    if ((unsigned char)r.buf[0] != 0x15 || (unsigned char)r.buf[1] != 0x03) {
        report(w, i, "mismatch: expected alert 15 03, got %02x %02x",
               (unsigned char)r.buf[0], (unsigned char)r.buf[1]);
        return OUT_MISMATCH;
    }
    return OUT_OK;
}

/* A full cycle: socket, [bind], connect, [greeting], exchange, close. */
static enum outcome cycle_request(struct worker *w, long i)
{
    struct reader r = { .fd = open_conn(w, i) };
    if (r.fd < 0)
        return OUT_ERROR;

    enum outcome res;
    long greet_id = -1;
    char line[LINE_MAX_LEN + 1];
    const char *rest;

    if (opt.mode == C_TLS) {
        res = tls_probe(w, r.fd, i);
        goto done;
    }
    if (opt.mode == C_GREET) {
        if (read_line(&r, line, now_ms() + GREET_TIMEOUT_MS) < 0) {
            report(w, i, "no greeting: %s", err_name(errno));
            res = OUT_ERROR;
            goto done;
        }
        greet_id = parse_id(line, "HELLO ", &rest);
        if (greet_id < 0 || *rest) {
            report(w, i, "mismatch: bad greeting \"%s\"", line);
            res = OUT_MISMATCH;
            goto done;
        }
    }
    res = exchange(w, &r, i, greet_id);
done:
    if (close(r.fd) != 0 && res == OUT_OK) {
        report(w, i, "close: %s", strerror(errno));
        res = OUT_ERROR;
    }
    return res;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct reader ka = { .fd = -1 }; /* keepalive connection */

    for (long i = 0; i < opt.requests; i++) {
        if (i > 0 && opt.sleep_ms > 0)
            sleep_ms(opt.sleep_ms);
        enum outcome res;
        if (opt.mode == C_KEEPALIVE) {
            if (ka.fd < 0) {
                ka.fd = open_conn(w, i);
                ka.have = 0;
            }
            res = ka.fd < 0 ? OUT_ERROR : exchange(w, &ka, i, -1);
            if (res != OUT_OK && ka.fd >= 0) {
                /* the stream may be out of step: start a fresh one */
                close(ka.fd);
                ka.fd = -1;
            }
        } else {
            res = cycle_request(w, i);
        }
        if (res == OUT_OK)
            w->ok++;
        else if (res == OUT_MISMATCH)
            w->mismatches++;
        else
            w->errors++;
    }
    if (ka.fd >= 0 && close(ka.fd) != 0) {
        report(w, opt.requests - 1, "close: %s", strerror(errno));
        if (w->ok > 0) {
            w->ok--;
            w->errors++;
        }
    }
    return NULL;
}

static void parse_addr(const char *text, int port, struct sockaddr_storage *ss,
                       socklen_t *len, const char *what)
{
    memset(ss, 0, sizeof *ss);
    if (opt.family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, text, &a->sin6_addr) == 1) {
            *len = sizeof *a;
            return;
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, text, &a->sin_addr) == 1) {
            *len = sizeof *a;
            return;
        }
    }
    fprintf(stderr, "echo_client: bad %s address for IPv%d: %s\n", what,
            opt.family == AF_INET6 ? 6 : 4, text);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "host", required_argument, NULL, 'H' },
        { "family", required_argument, NULL, 'f' },
        { "requests", required_argument, NULL, 'n' },
        { "threads", required_argument, NULL, 't' },
        { "mode", required_argument, NULL, 'm' },
        { "nonblock", no_argument, NULL, 'N' },
        { "cloexec", no_argument, NULL, 'C' },
        { "close-after-first", no_argument, NULL, 'F' },
        { "split-write", no_argument, NULL, 'W' },
        { "bind", required_argument, NULL, 'b' },
        { "sleep-ms", required_argument, NULL, 's' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const char *mode_names[] = {
        [C_CYCLE] = "cycle", [C_KEEPALIVE] = "keepalive",
        [C_GREET] = "greet", [C_TLS] = "tls",
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': opt.port = (int)parse_long(optarg, 1, 65535); break;
        case 'H': opt.host = optarg; break;
        case 'f':
            if (strcmp(optarg, "4") && strcmp(optarg, "6"))
                usage();
            opt.family = optarg[0] == '6' ? AF_INET6 : AF_INET;
            break;
        case 'n': opt.requests = parse_long(optarg, 1, 1000000000L); break;
        case 't': opt.threads = (int)parse_long(optarg, 1, 1024); break;
        case 'm': {
            size_t k, nm = sizeof mode_names / sizeof mode_names[0];
            for (k = 0; k < nm && strcmp(optarg, mode_names[k]); k++)
                ;
            if (k == nm)
                usage();
            opt.mode = (enum cmode)k;
            break;
        }
        case 'N': opt.nonblock = true; break;
        case 'C': opt.cloexec = true; break;
        case 'F': opt.close_after_first = true; break;
        case 'W': opt.split_write = true; break;
        case 'b': opt.bind_addr = optarg; break;
        case 's': opt.sleep_ms = (int)parse_long(optarg, 0, 3600000); break;
        case 'q': opt.quiet = true; break;
        default: usage();
        }
    }
    if (optind != argc || opt.port == 0)
        usage();
    if (opt.close_after_first && (opt.mode == C_KEEPALIVE || opt.mode == C_TLS)) {
        fprintf(stderr, "echo_client: --close-after-first needs --mode cycle or greet\n");
        exit(2);
    }
    if (!opt.family)
        opt.family = opt.host && strchr(opt.host, ':') ? AF_INET6 : AF_INET;
    if (!opt.host)
        opt.host = opt.family == AF_INET6 ? "::1" : "127.0.0.1";
    parse_addr(opt.host, opt.port, &dst_addr, &dst_len, "--host");
    if (opt.bind_addr)
        parse_addr(opt.bind_addr, 0, &bind_ss, &bind_len, "--bind");

    signal(SIGPIPE, SIG_IGN);

    struct worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    if (!ws) {
        perror("echo_client: calloc");
        return 2;
    }
    uint64_t seed = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32);
    int64_t t0 = now_us();
    for (int k = 0; k < opt.threads; k++) {
        ws[k].tid = k;
        ws[k].rng = (seed + (uint64_t)(k + 1) * UINT64_C(0x9E3779B97F4A7C15)) | 1;
        if (pthread_create(&ws[k].th, NULL, worker_main, &ws[k]) != 0) {
            ws[k].errors = opt.requests;
            ws[k].tid = -1;
            report(&ws[k], 0, "pthread_create failed");
        }
    }
    long ok = 0, mism = 0, errs = 0;
    for (int k = 0; k < opt.threads; k++) {
        if (ws[k].tid >= 0)
            pthread_join(ws[k].th, NULL);
        ok += ws[k].ok;
        mism += ws[k].mismatches;
        errs += ws[k].errors;
    }
    int64_t elapsed_us = now_us() - t0;
    if (elapsed_us < 1)
        elapsed_us = 1;
    long total = opt.requests * opt.threads;

    if (opt.bind_addr)
        printf("local=%s\n", last_local[0] ? last_local : "none");
    printf("requests=%ld ok=%ld mismatches=%ld errors=%ld elapsed_ms=%lld rps=%lld\n",
           total, ok, mism, errs, (long long)(elapsed_us / 1000),
           (long long)((int64_t)total * 1000000 / elapsed_us));
    fflush(stdout);
    free(ws);
    return (mism == 0 && errs == 0) ? 0 : 1;
}
