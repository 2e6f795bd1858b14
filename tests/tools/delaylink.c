/*
 * delaylink - join two network namespaces through TUN devices and delay
 * every packet, so a benchmark gets a real round-trip time without touching
 * any real network.
 *
 * Usage:
 *   delaylink --ns-a NS --dev-a DEV --ns-b NS --dev-b DEV --delay-ms D
 *             [--queue N] [--max-seconds S] [--rt-priority P]
 *
 *   --ns-a/--ns-b   network namespace: a name under /run/netns (as made by
 *                   `ip netns add NAME`) or a path such as /proc/PID/ns/net.
 *   --dev-a/--dev-b TUN device in that namespace. If it exists (made with
 *                   `ip tuntap add dev DEV mode tun`, addresses and link up
 *                   set by the caller) it is attached; otherwise a
 *                   non-persistent device is created, which vanishes when
 *                   delaylink exits (the caller then configures it after
 *                   READY).
 *   --delay-ms D    one-way delay (decimals allowed: 0.5); RTT = 2*D.
 *   --queue N       packets held per direction (default 4096). When a
 *                   direction's queue is full, that TUN is not read until a
 *                   packet leaves, so the kernel's own tx queue takes the
 *                   overflow (and drops, as a real link would).
 *   --max-seconds S exit after S seconds (default 600), a safety net.
 *   --rt-priority P run as SCHED_FIFO with priority P (1..99; default 0:
 *                   ordinary scheduling). On a busy machine this keeps the
 *                   delay close to D instead of D plus however long the
 *                   scheduler makes a woken process wait. A failure to get
 *                   it is reported on stderr and ignored.
 *
 * The program runs in the caller's (root) namespace: it enters each given
 * namespace only to open /dev/net/tun there (a TUN file is bound to the
 * namespace it was opened in), then returns. Packets read from DEV-A are
 * written to DEV-B after the delay and vice versa; nothing else is sent
 * anywhere. Each direction is a FIFO ring of (release time, packet): the
 * delay is constant, so arrival order is release order. The loop is one
 * ppoll() whose timeout is the earliest release time (nanosecond resolution;
 * the timer slack is set to 1 us so a 1 ms delay stays near 1 ms).
 *
 * Output: "READY\n" on stdout once both devices are open; at exit (SIGTERM,
 * SIGINT or --max-seconds) "a_to_b=<n> b_to_a=<n> dropped=<n>\n" and status
 * 0. Status 2 on usage or setup errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT 65536

struct pkt {
    int64_t release_ns;
    size_t len;
    unsigned char *data;
};

/* One direction: packets read from fd_in wait here, then go to fd_out. */
struct dir {
    int fd_in, fd_out;
    struct pkt *ring;
    size_t head, count;
    unsigned long forwarded;
};

static size_t queue_cap = 4096;
static unsigned long dropped;

static void die(const char *what)
{
    fprintf(stderr, "delaylink: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(void)
{
    fprintf(stderr, "usage: delaylink --ns-a NS --dev-a DEV --ns-b NS --dev-b DEV "
                    "--delay-ms D [--queue N] [--max-seconds S] [--rt-priority P]\n");
    exit(2);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int open_ns(const char *ns)
{
    char path[512];
    if (strchr(ns, '/'))
        snprintf(path, sizeof path, "%s", ns);
    else
        snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die(path);
    return fd;
}

/* Enters namespace ns, opens (attaches or creates) TUN dev there, returns. */
static int open_tun_in(const char *ns, const char *dev, int home_ns)
{
    int nsfd = open_ns(ns);
    if (setns(nsfd, CLONE_NEWNET) < 0)
        die("setns");
    close(nsfd);

    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        die("/dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (strlen(dev) >= IFNAMSIZ) {
        errno = ENAMETOOLONG;
        die(dev);
    }
    strcpy(ifr.ifr_name, dev);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0)
        die("TUNSETIFF");

    if (setns(home_ns, CLONE_NEWNET) < 0)
        die("setns back");
    return fd;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

/* Reads every packet fd_in has ready (until EAGAIN or the ring is full). */
static void take_in(struct dir *d, int64_t delay_ns, unsigned char *buf)
{
    for (int i = 0; i < 1024 && d->count < queue_cap; i++) {
        ssize_t n = read(d->fd_in, buf, MAX_PKT);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR)
                dropped++;
            return;
        }
        if (n == 0)
            return;
        unsigned char *copy = malloc((size_t)n);
        if (!copy) {
            dropped++;
            continue;
        }
        memcpy(copy, buf, (size_t)n);
        struct pkt *p = &d->ring[(d->head + d->count) % queue_cap];
        p->release_ns = now_ns() + delay_ns;
        p->len = (size_t)n;
        p->data = copy;
        d->count++;
    }
}

/* Writes every packet whose time has come. */
static void give_out(struct dir *d, int64_t now)
{
    while (d->count > 0 && d->ring[d->head].release_ns <= now) {
        struct pkt *p = &d->ring[d->head];
        ssize_t n = write(d->fd_out, p->data, p->len);
        if (n == (ssize_t)p->len)
            d->forwarded++;
        else
            dropped++; /* a link loses what it cannot deliver */
        free(p->data);
        p->data = NULL;
        d->head = (d->head + 1) % queue_cap;
        d->count--;
    }
}

int main(int argc, char **argv)
{
    const char *ns_a = NULL, *ns_b = NULL, *dev_a = NULL, *dev_b = NULL;
    double delay_ms = -1;
    long max_seconds = 600;
    long rt_priority = 0;
    static const struct option opts[] = {
        { "ns-a", required_argument, NULL, 'a' },
        { "ns-b", required_argument, NULL, 'b' },
        { "dev-a", required_argument, NULL, 'A' },
        { "dev-b", required_argument, NULL, 'B' },
        { "delay-ms", required_argument, NULL, 'd' },
        { "queue", required_argument, NULL, 'q' },
        { "max-seconds", required_argument, NULL, 's' },
        { "rt-priority", required_argument, NULL, 'r' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a': ns_a = optarg; break;
        case 'b': ns_b = optarg; break;
        case 'A': dev_a = optarg; break;
        case 'B': dev_b = optarg; break;
        case 'd':
            delay_ms = strtod(optarg, &end);
            if (end == optarg || *end || delay_ms < 0 || delay_ms > 10000)
                usage();
            break;
        case 'q':
            queue_cap = strtoul(optarg, &end, 10);
            if (end == optarg || *end || queue_cap < 1 || queue_cap > 1000000)
                usage();
            break;
        case 's':
            max_seconds = strtol(optarg, &end, 10);
            if (end == optarg || *end || max_seconds < 1 || max_seconds > 86400)
                usage();
            break;
        case 'r':
            rt_priority = strtol(optarg, &end, 10);
            if (end == optarg || *end || rt_priority < 0 || rt_priority > 99)
                usage();
            break;
        default:
            usage();
        }
    }
    if (!ns_a || !ns_b || !dev_a || !dev_b || delay_ms < 0 || optind != argc)
        usage();

    int home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (home < 0)
        die("/proc/self/ns/net");
    int fd_a = open_tun_in(ns_a, dev_a, home);
    int fd_b = open_tun_in(ns_b, dev_b, home);
    close(home);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* Signals stay blocked except inside ppoll, so none is lost between
     * checking `stop` and going to sleep. */
    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);

    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    if (rt_priority > 0) {
        struct sched_param sp = { .sched_priority = (int)rt_priority };
        if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
            fprintf(stderr, "delaylink: SCHED_FIFO: %s (continuing)\n", strerror(errno));
    }

    struct dir dirs[2] = {
        { .fd_in = fd_a, .fd_out = fd_b },
        { .fd_in = fd_b, .fd_out = fd_a },
    };
    for (int i = 0; i < 2; i++) {
        dirs[i].ring = calloc(queue_cap, sizeof(struct pkt));
        if (!dirs[i].ring)
            die("calloc");
    }
    unsigned char *buf = malloc(MAX_PKT);
    if (!buf)
        die("malloc");

    const int64_t delay_ns = (int64_t)(delay_ms * 1e6);
    const int64_t deadline = now_ns() + (int64_t)max_seconds * 1000000000;
    printf("READY\n");
    fflush(stdout);

    while (!stop) {
        int64_t now = now_ns();
        if (now >= deadline)
            break;
        for (int i = 0; i < 2; i++)
            give_out(&dirs[i], now);

        int64_t wake = deadline;
        struct pollfd pfd[2];
        for (int i = 0; i < 2; i++) {
            pfd[i].fd = dirs[i].count < queue_cap ? dirs[i].fd_in : -1;
            pfd[i].events = POLLIN;
            pfd[i].revents = 0;
            if (dirs[i].count > 0 && dirs[i].ring[dirs[i].head].release_ns < wake)
                wake = dirs[i].ring[dirs[i].head].release_ns;
        }
        int64_t wait = wake - now;
        if (wait < 0)
            wait = 0;
        struct timespec ts = { (time_t)(wait / 1000000000), (long)(wait % 1000000000) };
        int r = ppoll(pfd, 2, &ts, &waitmask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die("ppoll");
        }
        for (int i = 0; i < 2; i++)
            if (pfd[i].revents & POLLIN)
                take_in(&dirs[i], delay_ns, buf);
            else if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
                errno = EIO;
                die("tun device went away");
            }
    }

    printf("a_to_b=%lu b_to_a=%lu dropped=%lu\n", dirs[0].forwarded,
           dirs[1].forwarded, dropped);
    fflush(stdout);
    return 0;
}
