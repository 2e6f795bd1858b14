/*
 * write_loop - the cost of write() on a descriptor poolshim does not own.
 *
 * Usage:
 *   write_loop [--count N] [--pipe]
 *
 *   --count N  number of 1-byte write() calls (default 1000000; 0 is allowed,
 *              as the baseline of an instruction count: run N and 0 under
 *              `valgrind --tool=callgrind` and divide the difference by N).
 *   --pipe     write into a pipe drained by a child process instead of
 *              /dev/null (the child reads until EOF and is waited for).
 *
 * Run it with and without LD_PRELOAD=libpoolshim.so: the difference is what
 * the shim adds to every call on a descriptor it does not track.
 *
 * Output (stdout):
 *   "writes=<N> elapsed_ns=<t> ns_per_call=<t/N> cpu_ns_per_call=<c/N>\n"
 * where t is wall-clock time and c the process's CPU time (user + system)
 * over the loop: on a shared machine c/N is the steadier figure, since time
 * spent preempted is not in it.
 * Exit status 0, 1 if a write failed, 2 on usage errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
    fprintf(stderr, "usage: write_loop [--count N] [--pipe]\n");
    exit(2);
}

static long long now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    long count = 1000000;
    int use_pipe = 0;
    static const struct option opts[] = {
        { "count", required_argument, NULL, 'n' },
        { "pipe", no_argument, NULL, 'p' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    char *end;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            count = strtol(optarg, &end, 10);
            if (end == optarg || *end || count < 0 || count > 1000000000L)
                usage();
            break;
        case 'p':
            use_pipe = 1;
            break;
        default:
            usage();
        }
    }
    if (optind != argc)
        usage();

    int fd;
    pid_t child = -1;
    if (use_pipe) {
        int p[2];
        if (pipe(p) < 0) {
            perror("write_loop: pipe");
            return 1;
        }
        child = fork();
        if (child < 0) {
            perror("write_loop: fork");
            return 1;
        }
        if (child == 0) {
            close(p[1]);
            char buf[65536];
            while (read(p[0], buf, sizeof buf) > 0)
                ;
            _exit(0);
        }
        close(p[0]);
        fd = p[1];
    } else {
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            perror("write_loop: /dev/null");
            return 1;
        }
    }

    const char byte = 'x';
    long failed = 0;
    long long t0 = now_ns(CLOCK_MONOTONIC);
    long long c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < count; i++)
        if (write(fd, &byte, 1) != 1)
            failed++;
    long long c1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    long long t1 = now_ns(CLOCK_MONOTONIC);

    close(fd);
    if (child > 0)
        waitpid(child, NULL, 0);
    if (failed)
        fprintf(stderr, "write_loop: %ld writes failed\n", failed);
    printf("writes=%ld elapsed_ns=%lld ns_per_call=%.1f cpu_ns_per_call=%.1f\n", count,
           t1 - t0, count ? (double)(t1 - t0) / (double)count : 0.0,
           count ? (double)(c1 - c0) / (double)count : 0.0);
    return failed ? 1 : 0;
}
