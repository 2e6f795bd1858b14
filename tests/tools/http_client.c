/*
 * http_client - HTTP/1.1 request loop for scripts/bench (poolshim tests).
 *
 * Usage:
 *   http_client --port P [--host 127.0.0.1] [--path /] [--requests N]
 *               [--threads T] [--mode cycle|keepalive] [--nodelay]
 *               [--expect-length N] [--quiet]
 *
 *   --host      an IPv4 address (default 127.0.0.1); the Host header is
 *               "<host>:<port>".
 *   --path      the request target (default "/"), sent as is.
 *   --requests  per thread (default 1); --threads default 1; total = T*N.
 *   --nodelay   setsockopt(TCP_NODELAY, 1) on every socket before connect,
 *               as curl, Python's http.client and most HTTP clients do.
 *   --expect-length N  every body must be exactly N bytes long (without it
 *               any length is accepted, as long as the body is complete).
 *   --quiet     no per-error lines on stderr (the summary is still printed).
 *
 * Modes: every request is "GET <path> HTTP/1.1\r\nHost: <host>:<port>\r\n\r\n"
 * in one write(); the response is read to its end: the status line, the
 * headers (Content-Length is required; chunked bodies are not supported and
 * count as errors), then Content-Length bytes of body, however the response
 * is split across reads. Nothing is read beyond the response.
 *   cycle      (default) socket(AF_INET, SOCK_STREAM), [TCP_NODELAY],
 *              SO_RCVTIMEO/SO_SNDTIMEO, connect, write, read, close per
 *              request: the pattern poolshim accelerates.
 *   keepalive  one connection per thread for all its requests: the ceiling.
 *              After an error, or a response that says "Connection: close",
 *              the thread opens a new connection for its next request. A
 *              reused connection that the server closed before answering
 *              (EOF or reset before the first byte of the response) is
 *              retried once on a new connection, as HTTP clients do with an
 *              idempotent request; that retry is not an error.
 *
 * Output (stdout), at the end, in echo_client's format (scripts/bench parses
 * both with the same helper), plus the elapsed time in seconds:
 *   requests=<total> ok=<ok> mismatches=<m> errors=<e> elapsed_ms=<ms>
 *   seconds=<s> rps=<r>
 * Each request is counted in exactly one of ok, mismatches (a complete
 * response whose status is not 200, or whose body is not --expect-length
 * long) and errors (syscall failure, timeout, EOF before the end of the
 * response, a malformed or oversized header block, close() failing). Errors
 * and mismatches print one line each on stderr, at most 10, then a single
 * "further errors suppressed" line.
 * Exit status: 0 iff mismatches == 0 and errors == 0; 2 on usage errors.
 *
 * Bounded: every socket has SO_RCVTIMEO and SO_SNDTIMEO of 5 s (connect
 * included), and no read or write starts later than 5 s after the request's
 * first write did, so a silent or trickling server costs a request at most
 * about 10 s (then counted as an error), never a hang. SIGPIPE is ignored.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include "monotonic.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum cmode { C_CYCLE, C_KEEPALIVE };
enum outcome { OUT_OK, OUT_MISMATCH, OUT_ERROR, OUT_STALE };

#define IO_TIMEOUT_MS 5000
#define MAX_REPORTS 10
#define HDR_MAX 8192        /* status line and headers, with their CRLFs */
#define READ_CHUNK 16384    /* the bounded read buffer (headers fit in it) */
#define REQ_MAX 4096
#define BODY_MAX ((long long)1 << 40)

static struct {
    int port;
    const char *host;
    const char *path;
    long requests;
    int threads;
    enum cmode mode;
    bool nodelay, quiet;
    long long expect_len; /* -1: any */
} opt = { .host = "127.0.0.1", .path = "/", .requests = 1, .threads = 1,
          .expect_len = -1 };

static struct sockaddr_in dst_addr;
static char request[REQ_MAX];
static size_t request_len;

static atomic_int n_reports;

struct worker {
    pthread_t th;
    int tid;
    long ok, mismatches, errors;
    char buf[READ_CHUNK];
};

static void usage(void)
{
    fprintf(stderr,
            "usage: http_client --port P [--host 127.0.0.1] [--path /] "
            "[--requests N] [--threads T]\n"
            "                   [--mode cycle|keepalive] [--nodelay] "
            "[--expect-length N] [--quiet]\n");
    exit(2);
}

static long long parse_num(const char *s, long long lo, long long hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage();
    return v;
}

static void report(const struct worker *w, long i, const char *fmt, ...)
{
    if (opt.quiet)
        return;
    int n = atomic_fetch_add(&n_reports, 1);
    if (n > MAX_REPORTS)
        return;
    if (n == MAX_REPORTS) {
        fprintf(stderr, "http_client: further errors suppressed\n");
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "http_client: thread %d request %ld: %s\n", w->tid, i, msg);
}

static const char *err_name(int e)
{
    if (e == EAGAIN || e == EWOULDBLOCK || e == ETIMEDOUT)
        return "timed out";
    if (e == ECONNABORTED)
        return "unexpected EOF";
    return strerror(e);
}

/* Returns a connected fd, or -1 after reporting the failing step. */
static int open_conn(struct worker *w, long i)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        report(w, i, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    struct timeval tv = { IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000 };
    if (opt.nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
        report(w, i, "setsockopt TCP_NODELAY: %s", strerror(errno));
        goto fail;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        report(w, i, "setsockopt SO_RCVTIMEO/SO_SNDTIMEO: %s", strerror(errno));
        goto fail;
    }
    for (int k = 0;; k++) {
        if (connect(fd, (struct sockaddr *)&dst_addr, sizeof dst_addr) == 0)
            break;
        if (errno == EINTR && k < 100)
            continue;
        report(w, i, "connect: %s", err_name(errno));
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

static int write_all(int fd, const char *p, size_t len, int64_t deadline)
{
    for (int i = 0; len > 0 && i < 10000; i++) {
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = write(fd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = EIO;
        return -1;
    }
    return len == 0 ? 0 : -1;
}

/* One read into buf; -1 with errno (ECONNABORTED for EOF, ETIMEDOUT). */
static ssize_t read_some(int fd, char *buf, size_t cap, int64_t deadline)
{
    for (int i = 0; i < 100; i++) {
        if (now_ms() > deadline) {
            errno = ETIMEDOUT;
            return -1;
        }
        ssize_t n = read(fd, buf, cap);
        if (n > 0)
            return n;
        if (n == 0) {
            errno = ECONNABORTED;
            return -1;
        }
        if (errno != EINTR)
            return -1;
    }
    errno = ETIMEDOUT;
    return -1;
}

/* Case-insensitive: does the comma list in v hold the token tok? */
static bool has_token(const char *v, size_t vlen, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;
    while (i < vlen) {
        while (i < vlen && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < vlen && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

struct response {
    int status;
    long long content_length; /* -1 until seen */
    bool close;               /* the server will close after it */
};

/*
 * Parses the header block hdr[0..len) (which ends with the blank line).
 * Returns 0, or -1 after reporting what is wrong.
 */
static int parse_head(struct worker *w, long i, const char *hdr, size_t len,
                      struct response *rsp)
{
    const char *end = hdr + len;
    const char *eol = memchr(hdr, '\r', len);
    /* "HTTP/1.x SSS" and an optional reason */
    if (!eol || eol - hdr < 12 || strncmp(hdr, "HTTP/1.", 7) != 0 ||
        !isdigit((unsigned char)hdr[7]) || hdr[8] != ' ' ||
        !isdigit((unsigned char)hdr[9]) || !isdigit((unsigned char)hdr[10]) ||
        !isdigit((unsigned char)hdr[11]) || (eol - hdr > 12 && hdr[12] != ' ')) {
        report(w, i, "bad status line \"%.*s\"", (int)(eol ? eol - hdr : 40), hdr);
        return -1;
    }
    bool http10 = hdr[7] == '0';
    rsp->status = (hdr[9] - '0') * 100 + (hdr[10] - '0') * 10 + (hdr[11] - '0');
    rsp->content_length = -1;
    rsp->close = http10;
    bool keep_alive = false;

    const char *p = eol + 2;
    while (p < end) {
        const char *e = memchr(p, '\r', (size_t)(end - p));
        if (!e || e + 1 >= end || e[1] != '\n') {
            report(w, i, "bad header line");
            return -1;
        }
        if (e == p)
            break; /* the blank line */
        const char *colon = memchr(p, ':', (size_t)(e - p));
        if (!colon || colon == p) {
            report(w, i, "bad header line \"%.*s\"", (int)(e - p), p);
            return -1;
        }
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        size_t vlen = (size_t)(e - v);
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (nlen == 14 && strncasecmp(p, "Content-Length", 14) == 0) {
            long long n = 0;
            if (vlen == 0 || vlen > 15) {
                report(w, i, "bad Content-Length \"%.*s\"", (int)vlen, v);
                return -1;
            }
            for (size_t k = 0; k < vlen; k++) {
                if (!isdigit((unsigned char)v[k])) {
                    report(w, i, "bad Content-Length \"%.*s\"", (int)vlen, v);
                    return -1;
                }
                n = n * 10 + (v[k] - '0');
            }
            if (n > BODY_MAX || (rsp->content_length >= 0 && rsp->content_length != n)) {
                report(w, i, "bad Content-Length \"%.*s\"", (int)vlen, v);
                return -1;
            }
            rsp->content_length = n;
        } else if (nlen == 17 && strncasecmp(p, "Transfer-Encoding", 17) == 0) {
            report(w, i, "Transfer-Encoding \"%.*s\" not supported", (int)vlen, v);
            return -1;
        } else if (nlen == 10 && strncasecmp(p, "Connection", 10) == 0) {
            if (has_token(v, vlen, "close"))
                rsp->close = true;
            if (has_token(v, vlen, "keep-alive"))
                keep_alive = true;
        }
        p = e + 2;
    }
    if (http10 && keep_alive)
        rsp->close = false;
    if (rsp->status >= 100 && rsp->status < 200) {
        report(w, i, "interim response %d not supported", rsp->status);
        return -1;
    }
    if (rsp->content_length < 0) {
        report(w, i, "no Content-Length in the response (status %d)", rsp->status);
        return -1;
    }
    return 0;
}

/*
 * One request and its whole response on an open connection. *close_after is
 * set when the connection must not carry another request. OUT_STALE: a
 * reused connection ended before the first byte of the response (the caller
 * may retry it on a new one).
 */
static enum outcome exchange(struct worker *w, int fd, long i, bool reused,
                             bool *close_after)
{
    int64_t deadline = now_ms() + IO_TIMEOUT_MS;
    char *buf = w->buf;
    size_t have = 0, hdr_len = 0;

    *close_after = true;
    if (write_all(fd, request, request_len, deadline) < 0) {
        if (reused && (errno == EPIPE || errno == ECONNRESET))
            return OUT_STALE;
        report(w, i, "write: %s", err_name(errno));
        return OUT_ERROR;
    }
    /* the header block, however many reads it takes */
    for (;;) {
        if (have >= HDR_MAX) {
            report(w, i, "header block longer than %d bytes", HDR_MAX);
            return OUT_ERROR;
        }
        ssize_t n = read_some(fd, buf + have, sizeof w->buf - have, deadline);
        if (n < 0) {
            if (have == 0 && reused && (errno == ECONNABORTED || errno == ECONNRESET))
                return OUT_STALE;
            report(w, i, "read headers: %s", err_name(errno));
            return OUT_ERROR;
        }
        /* the terminator may straddle two reads: look back 3 bytes */
        size_t from = have > 3 ? have - 3 : 0;
        have += (size_t)n;
        const char *t = memmem(buf + from, have - from, "\r\n\r\n", 4);
        if (t) {
            hdr_len = (size_t)(t - buf) + 4;
            break;
        }
    }
    if (hdr_len > HDR_MAX) {
        report(w, i, "header block longer than %d bytes", HDR_MAX);
        return OUT_ERROR;
    }
    struct response rsp;
    if (parse_head(w, i, buf, hdr_len, &rsp) < 0)
        return OUT_ERROR;

    /* the body: what came with the headers, then the rest, chunk by chunk
     * into the same bounded buffer (its bytes are counted, not kept) */
    long long body = (long long)(have - hdr_len);
    if (body > rsp.content_length) {
        report(w, i, "%lld bytes after a %lld-byte body", body - rsp.content_length,
               rsp.content_length);
        return OUT_ERROR;
    }
    while (body < rsp.content_length) {
        long long left = rsp.content_length - body;
        size_t want = left < (long long)sizeof w->buf ? (size_t)left : sizeof w->buf;
        ssize_t n = read_some(fd, buf, want, deadline);
        if (n < 0) {
            report(w, i, "read body (%lld of %lld bytes): %s", body, rsp.content_length,
                   err_name(errno));
            return OUT_ERROR;
        }
        body += n;
    }
    *close_after = rsp.close;
    if (rsp.status != 200) {
        report(w, i, "mismatch: status %d", rsp.status);
        return OUT_MISMATCH;
    }
    if (opt.expect_len >= 0 && body != opt.expect_len) {
        report(w, i, "mismatch: body of %lld bytes, expected %lld", body, opt.expect_len);
        return OUT_MISMATCH;
    }
    return OUT_OK;
}

static enum outcome close_checked(struct worker *w, int fd, long i, enum outcome res)
{
    if (close(fd) != 0 && res == OUT_OK) {
        report(w, i, "close: %s", strerror(errno));
        return OUT_ERROR;
    }
    return res;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int ka = -1;       /* keepalive connection */
    bool ka_used = false;

    for (long i = 0; i < opt.requests; i++) {
        enum outcome res;
        bool close_after;
        if (opt.mode == C_CYCLE) {
            int fd = open_conn(w, i);
            if (fd < 0) {
                res = OUT_ERROR;
            } else {
                res = exchange(w, fd, i, false, &close_after);
                res = close_checked(w, fd, i, res);
            }
        } else {
            res = OUT_STALE;
            for (int attempt = 0; res == OUT_STALE && attempt < 2; attempt++) {
                if (ka < 0) {
                    ka = open_conn(w, i);
                    ka_used = false;
                }
                if (ka < 0) {
                    res = OUT_ERROR;
                    break;
                }
                res = exchange(w, ka, i, ka_used, &close_after);
                ka_used = true;
                if (res == OUT_STALE || res == OUT_ERROR || close_after) {
                    /* the stream may be out of step, or is ending */
                    close(ka);
                    ka = -1;
                }
            }
            if (res == OUT_STALE) {
                report(w, i, "connection closed before the response, twice");
                res = OUT_ERROR;
            }
        }
        if (res == OUT_OK)
            w->ok++;
        else if (res == OUT_MISMATCH)
            w->mismatches++;
        else
            w->errors++;
    }
    if (ka >= 0 && close(ka) != 0) {
        report(w, opt.requests - 1, "close: %s", strerror(errno));
        if (w->ok > 0) {
            w->ok--;
            w->errors++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "host", required_argument, NULL, 'H' },
        { "path", required_argument, NULL, 'P' },
        { "requests", required_argument, NULL, 'n' },
        { "threads", required_argument, NULL, 't' },
        { "mode", required_argument, NULL, 'm' },
        { "nodelay", no_argument, NULL, 'D' },
        { "expect-length", required_argument, NULL, 'L' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': opt.port = (int)parse_num(optarg, 1, 65535); break;
        case 'H': opt.host = optarg; break;
        case 'P': opt.path = optarg; break;
        case 'n': opt.requests = (long)parse_num(optarg, 1, 1000000000L); break;
        case 't': opt.threads = (int)parse_num(optarg, 1, 1024); break;
        case 'm':
            if (strcmp(optarg, "cycle") == 0)
                opt.mode = C_CYCLE;
            else if (strcmp(optarg, "keepalive") == 0)
                opt.mode = C_KEEPALIVE;
            else
                usage();
            break;
        case 'D': opt.nodelay = true; break;
        case 'L': opt.expect_len = parse_num(optarg, 0, BODY_MAX); break;
        case 'q': opt.quiet = true; break;
        default: usage();
        }
    }
    if (optind != argc || opt.port == 0)
        usage();
    if (opt.path[0] == '\0' || strpbrk(opt.path, " \r\n")) {
        fprintf(stderr, "http_client: --path must be non-empty, without spaces or line breaks\n");
        exit(2);
    }
    dst_addr.sin_family = AF_INET;
    dst_addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &dst_addr.sin_addr) != 1) {
        fprintf(stderr, "http_client: --host wants an IPv4 address, got %s\n", opt.host);
        exit(2);
    }
    int rl = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
                      opt.path, opt.host, opt.port);
    if (rl < 0 || (size_t)rl >= sizeof request) {
        fprintf(stderr, "http_client: --path too long\n");
        exit(2);
    }
    request_len = (size_t)rl;

    signal(SIGPIPE, SIG_IGN);

    struct worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    if (!ws) {
        perror("http_client: calloc");
        return 2;
    }
    int64_t t0 = now_us();
    for (int k = 0; k < opt.threads; k++) {
        ws[k].tid = k;
        if (pthread_create(&ws[k].th, NULL, worker_main, &ws[k]) != 0) {
            ws[k].errors = opt.requests;
            report(&ws[k], 0, "pthread_create failed");
            ws[k].tid = -1;
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

    printf("requests=%ld ok=%ld mismatches=%ld errors=%ld elapsed_ms=%lld seconds=%.3f "
           "rps=%lld\n",
           total, ok, mism, errs, (long long)(elapsed_us / 1000), (double)elapsed_us / 1e6,
           (long long)((int64_t)total * 1000000 / elapsed_us));
    fflush(stdout);
    free(ws);
    return (mism == 0 && errs == 0) ? 0 : 1;
}
