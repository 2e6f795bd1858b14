/*
 * client_common - what safety_client and hazard_client share: "FAIL:" and
 * "INFO" output, and the line protocol of echo_server/safety_server
 * ("REQ <tok>\n" -> "RSP <tok> <connid>\n") over blocking-or-not sockets,
 * with every wait bounded.
 */
#ifndef POOLSHIM_CLIENT_COMMON_H
#define POOLSHIM_CLIENT_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define IO_TIMEOUT_MS 5000
#define MAX_FDS_TO_SCAN 4096

/* checks that failed so far (fail() counts them): the exit status */
extern int failures;

/* "FAIL: ..." / "INFO ..." lines on stdout, flushed at once. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond, ...)                   \
	do {                               \
		if (!(cond))               \
			fail(__VA_ARGS__); \
	} while (0)

#define REQUIRE(cond, ...)                 \
	do {                               \
		if (!(cond)) {             \
			fail(__VA_ARGS__); \
			exit(1);           \
		}                          \
	} while (0)

int64_t now_ms(void);
void sleep_ms(long ms);

/* connect() fd to 127.0.0.1:p (its result); open_conn: socket + connect,
 * exits on failure. */
int connect_to(int fd, int p);
int open_conn(int p);

/* The whole string, write() by write(); 0 or -1 (errno). */
int send_str(int fd, const char *s);

/* One line, one byte per read() so nothing after the '\n' is taken from
 * the socket; poll-guarded.  Its length (without '\n'), or -1 (errno;
 * ENODATA for EOF, ETIMEDOUT). */
int read_line(int fd, char *buf, size_t cap, int timeout_ms);

/* "RSP <tok> <id>[ ...]" -> id; -2 for an answer to another request. */
long parse_answer(const char *line, const char *tok);

/* Sends cmd (a whole line, with its '\n') and reads the answer to tok: the
 * connid, -1 on an I/O error, -2 for someone else's answer (both reported
 * with fail()). */
long ask(int fd, const char *cmd, const char *tok);

/* REQ tok and its answer: the connid, -1 on an I/O error, -2 for someone
 * else's answer (both reported with fail()). */
long request(int fd, const char *tok);

/* socket, connect, request, close: the connid. */
long cycle(int p, const char *tok);

/* Open socket descriptors (up to max of them in out) and, in *total, all
 * open descriptors of the process. */
int list_sockets(int *out, int max, int *total);
int count_fds(void);

/* A SIGALRM handler that closes alarm_fd if it is >= 0 (then sets it to
 * -1 and counts the close in alarm_closes), keeping errno. */
extern volatile sig_atomic_t alarm_fd;
extern volatile sig_atomic_t alarm_closes;
void close_alarm_fd(int sig);

/* From now on SIGALRM runs handler (SA_RESTART) every interval_us;
 * stop_alarm stops the timer and ignores the signal. */
void start_alarm(void (*handler)(int), long interval_us);
void stop_alarm(void);

/* The test runner's descriptors must not appear in listings or counts:
 * every descriptor >= 3 is closed with the raw syscall. */
void close_inherited_fds(void);

#endif
