/*
 * echo_server - loopback line server for poolshim tests.
 *
 * Usage:
 *   echo_server [--family 4|6] [--mode MODE] [--delay-ms N]
 *               [--idle-close-ms N] [--max-seconds N]
 *
 * Binds 127.0.0.1 (or ::1 with --family 6) on an ephemeral port, prints
 * exactly "PORT <n>\n" on stdout, then serves until SIGTERM/SIGINT or
 * --max-seconds (default 120) have passed. At exit it prints
 * "accepted=<A> requests=<R>\n" on stdout and exits 0.
 *
 * Protocol (one thread per connection, keep-alive):
 *   "REQ <token>\n"  -> "RSP <token> <connid>\n"
 *                       token: 1..64 printable non-space characters;
 *                       connid: 1-based sequence number of the accepted
 *                       connection, so a test can tell which connection
 *                       served a request.
 *   "STATS\n"        -> "STATS accepted=<A> requests=<R>\n"
 *                       not counted as a request, but the connection that
 *                       carries it IS counted in accepted (it is included in
 *                       the A it reports).
 *   any other line   -> "ERR\n"
 *   a line longer than the buffer -> "ERR\n" and the connection is closed.
 *   EOF or error     -> close.
 *
 * Counters: accepted is incremented when accept() returns; requests is
 * incremented for each valid REQ line just before its answer is sent, so a
 * client that has read its answer always finds the request counted (in STATS
 * or in the exit line). A request whose answer could not be delivered
 * (peer reset) is still counted: requests = valid REQ lines received.
 *
 * Modes (--mode):
 *   echo        (default) as above.
 *   greet       server speaks first: "HELLO <connid>\n" on accept (SMTP-like).
 *   split       each RSP is sent in two parts: "RSP <token> <connid> part1\n",
 *               then after --delay-ms (default 150) "tail <token>\n".
 *   close-idle  after an answer, if no new request arrives within
 *               --idle-close-ms (default 200) the server closes (FIN).
 *   rst-idle    same, but resets the connection (SO_LINGER {1,0}: RST).
 *   tls         if the first bytes of a connection are 0x16 0x03 (a TLS
 *               record), reply with the two bytes 0x15 0x03 (an alert
 *               record header), shut down and close; otherwise echo.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_ECHO, M_GREET, M_SPLIT, M_CLOSE_IDLE, M_RST_IDLE, M_TLS };

#define MAX_TOKEN 64
#define INBUF 512
#define TICK_MS 1000

static struct {
    int family;
    enum mode mode;
    int delay_ms;
    int idle_close_ms;
    int max_seconds;
} cfg = { AF_INET, M_ECHO, 150, 200, 120 };

static atomic_ulong n_accepted;
static atomic_ulong n_requests;
static struct timespec deadline; /* monotonic; written once before threads */

struct conn {
    int fd;
    unsigned long id;
};

static void die(const char *what)
{
    fprintf(stderr, "echo_server: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: echo_server [--family 4|6] [--mode echo|greet|split|"
            "close-idle|rst-idle|tls]\n"
            "                   [--delay-ms N] [--idle-close-ms N] "
            "[--max-seconds N]\n");
    exit(2);
}

static int parse_int(const char *s, int lo, int hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        usage();
    return (int)v;
}

static long ms_until_deadline(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline.tv_sec - now.tv_sec) * 1000L +
           (deadline.tv_nsec - now.tv_nsec) / 1000000L;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    /* bounded: each EINTR restart continues with the remaining time */
    for (int i = 0; i < 1000 && nanosleep(&ts, &ts) == -1 && errno == EINTR; i++)
        ;
}

/* All-or-nothing send; MSG_NOSIGNAL so a client reset cannot kill us. */
static bool send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    for (int i = 0; len > 0 && i < 10000; i++) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return len == 0;
}

static void print_counts_and_exit(void)
{
    printf("accepted=%lu requests=%lu\n", atomic_load(&n_accepted),
           atomic_load(&n_requests));
    fflush(stdout);
    _exit(0);
}

/*
 * SIGTERM/SIGINT are blocked in every thread and collected here, so the
 * exit path runs in ordinary thread context (stdio is safe) instead of in a
 * signal handler. The same wait doubles as the --max-seconds safety net.
 */
static void *signal_thread(void *arg)
{
    sigset_t *set = arg;
    for (int i = 0; i < 100000; i++) {
        long left = ms_until_deadline();
        if (left <= 0)
            break;
        struct timespec ts = { left / 1000, (left % 1000) * 1000000L };
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0 || (sig < 0 && errno == EAGAIN))
            break;
    }
    print_counts_and_exit();
    return NULL;
}

static bool valid_token(const char *t, size_t len)
{
    if (len == 0 || len > MAX_TOKEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (t[i] <= ' ' || t[i] > '~')
            return false;
    return true;
}

/* Handles one complete line (without '\n'); false means the peer is gone. */
static bool handle_line(const struct conn *c, const char *line, size_t len)
{
    char out[160];
    int n;

    if (len > 4 && memcmp(line, "REQ ", 4) == 0 && valid_token(line + 4, len - 4)) {
        int tl = (int)(len - 4);
        const char *tok = line + 4;
        atomic_fetch_add(&n_requests, 1);
        if (cfg.mode == M_SPLIT) {
            n = snprintf(out, sizeof out, "RSP %.*s %lu part1\n", tl, tok, c->id);
            if (!send_all(c->fd, out, (size_t)n))
                return false;
            sleep_ms(cfg.delay_ms);
            n = snprintf(out, sizeof out, "tail %.*s\n", tl, tok);
            return send_all(c->fd, out, (size_t)n);
        }
        n = snprintf(out, sizeof out, "RSP %.*s %lu\n", tl, tok, c->id);
        return send_all(c->fd, out, (size_t)n);
    }
    if (len == 5 && memcmp(line, "STATS", 5) == 0) {
        n = snprintf(out, sizeof out, "STATS accepted=%lu requests=%lu\n",
                     atomic_load(&n_accepted), atomic_load(&n_requests));
        return send_all(c->fd, out, (size_t)n);
    }
    return send_all(c->fd, "ERR\n", 4);
}

/*
 * Closing with unread input would send RST and could destroy the reply we
 * just sent; half-close and drain briefly so the peer reliably reads it.
 */
static void shutdown_and_drain(int fd)
{
    char sink[512];
    shutdown(fd, SHUT_WR);
    struct pollfd p = { .fd = fd, .events = POLLIN };
    for (int i = 0; i < 64; i++) {
        if (poll(&p, 1, 500) <= 0)
            return;
        if (recv(fd, sink, sizeof sink, 0) <= 0)
            return;
    }
}

static void reject_tls(int fd)
{
    static const unsigned char alert[2] = { 0x15, 0x03 };
    if (send_all(fd, alert, sizeof alert))
        shutdown_and_drain(fd);
}

static void *conn_thread(void *arg)
{
    struct conn c = *(struct conn *)arg;
    free(arg);

    char buf[INBUF];
    size_t have = 0;
    bool answered = false;  /* idle modes only close after an answer */
    bool tls_checked = cfg.mode != M_TLS;
    bool reset = false;

    if (cfg.mode == M_GREET) {
        char hello[40];
        int n = snprintf(hello, sizeof hello, "HELLO %lu\n", c.id);
        if (!send_all(c.fd, hello, (size_t)n))
            goto out;
    }

    /* Bounded by the process deadline: the server exits at --max-seconds. */
    while (ms_until_deadline() > 0) {
        bool idle_mode = cfg.mode == M_CLOSE_IDLE || cfg.mode == M_RST_IDLE;
        int timeout = (idle_mode && answered) ? cfg.idle_close_ms : TICK_MS;
        struct pollfd p = { .fd = c.fd, .events = POLLIN };
        int pr = poll(&p, 1, timeout);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pr == 0) {
            if (idle_mode && answered) {
                reset = cfg.mode == M_RST_IDLE;
                break;
            }
            continue;
        }

        ssize_t r = recv(c.fd, buf + have, sizeof buf - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += (size_t)r;

        if (!tls_checked) {
            if (have == 1 && (unsigned char)buf[0] == 0x16)
                continue; /* need the second byte to decide */
            tls_checked = true;
            if ((unsigned char)buf[0] == 0x16 && (unsigned char)buf[1] == 0x03) {
                reject_tls(c.fd);
                goto out;
            }
        }

        /* Pipelined lines are answered in order; leftovers stay buffered. */
        size_t start = 0;
        bool alive = true;
        for (size_t i = 0; i < have && alive; i++) {
            if (buf[i] != '\n')
                continue;
            alive = handle_line(&c, buf + start, i - start);
            answered = true;
            start = i + 1;
        }
        if (!alive)
            break;
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == sizeof buf) {
            if (send_all(c.fd, "ERR\n", 4))
                shutdown_and_drain(c.fd);
            break;
        }
    }

    if (reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
out:
    close(c.fd);
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "family", required_argument, NULL, 'f' },
        { "mode", required_argument, NULL, 'm' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "idle-close-ms", required_argument, NULL, 'i' },
        { "max-seconds", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const char *mode_names[] = {
        [M_ECHO] = "echo", [M_GREET] = "greet", [M_SPLIT] = "split",
        [M_CLOSE_IDLE] = "close-idle", [M_RST_IDLE] = "rst-idle", [M_TLS] = "tls",
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'f':
            if (strcmp(optarg, "4") && strcmp(optarg, "6"))
                usage();
            cfg.family = optarg[0] == '6' ? AF_INET6 : AF_INET;
            break;
        case 'm': {
            size_t k, nm = sizeof mode_names / sizeof mode_names[0];
            for (k = 0; k < nm && strcmp(optarg, mode_names[k]); k++)
                ;
            if (k == nm)
                usage();
            cfg.mode = (enum mode)k;
            break;
        }
        case 'd': cfg.delay_ms = parse_int(optarg, 0, 60000); break;
        case 'i': cfg.idle_close_ms = parse_int(optarg, 1, 60000); break;
        case 's': cfg.max_seconds = parse_int(optarg, 1, 86400); break;
        default: usage();
        }
    }
    if (optind != argc)
        usage();

    signal(SIGPIPE, SIG_IGN);
    /* Block before any thread exists so every thread inherits the mask. */
    static sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0)
        die("pthread_sigmask");

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += cfg.max_seconds;

    int lfd = socket(cfg.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR");

    struct sockaddr_storage ss;
    socklen_t slen;
    memset(&ss, 0, sizeof ss);
    if (cfg.family == AF_INET6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_loopback;
        slen = sizeof *a6;
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        slen = sizeof *a4;
    }
    if (bind(lfd, (struct sockaddr *)&ss, slen) < 0)
        die("bind");
    if (listen(lfd, 512) < 0)
        die("listen");
    slen = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *)&ss, &slen) < 0)
        die("getsockname");
    int port = cfg.family == AF_INET6
                   ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                   : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);

    pthread_t st;
    if (pthread_create(&st, &attr, signal_thread, &sigs) != 0) {
        errno = EAGAIN;
        die("pthread_create");
    }

    printf("PORT %d\n", port);
    fflush(stdout);

    /* Bounded by the deadline; the signal thread ends the process anyway. */
    while (ms_until_deadline() > 0) {
        struct pollfd p = { .fd = lfd, .events = POLLIN };
        if (poll(&p, 1, TICK_MS) <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM)
                sleep_ms(10); /* let connection threads release fds */
            continue;
        }
        /* split mode's tail would otherwise wait for a delayed ACK (40 ms) */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->id = atomic_fetch_add(&n_accepted, 1) + 1;
        pthread_t t;
        if (pthread_create(&t, &attr, conn_thread, c) != 0) {
            close(fd);
            free(c);
        }
    }
    /* Deadline reached: let the signal thread print and exit. */
    for (int i = 0; i < 100; i++)
        sleep_ms(100);
    print_counts_and_exit();
}
