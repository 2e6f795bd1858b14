/* Owns the log sink, the level, the line format and the start-up hold.  A
 * line is formatted on the stack and written with one write(2) so lines from
 * threads and processes do not interleave; errno is preserved so logging
 * never changes what a wrapper reports. */
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ps_log_level = PS_LOG_WARN;
static int log_fd = 2;
static dev_t log_dev; /* identity of a log file, checked before each line */
static ino_t log_ino;

static int sink(void);

void ps_log_set_fd(int fd)
{
	struct stat st;
	log_fd = fd;
	if (fd != 2 && ps_sys.fstat(fd, &st) == 0) {
		log_dev = st.st_dev;
		log_ino = st.st_ino;
	}
}

/* what POOLSHIM_LOG accepts, and what a line calls its level */
static const char *const names[] = { "off", "error", "warn", "info", "debug" };
static const char *const labels[] = { "off", "error", "warning", "info", "debug" };

/* Start-up hold: lines without their "poolshim[PID]: " prefix, which is
 * added when they are written.  Only the holding thread fills it. */
static bool holding;
static pthread_t holder;
static char held[4096];
static size_t held_len;

int ps_log_fd(void) { return sink(); }

int ps_log_parse_level(const char *s)
{
	for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int ps_log_open_file(const char *path, int fd_floor)
{
	int fd = ps_sys.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	int high = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, fd_floor);
	if (high >= 0) {
		ps_sys.close(fd);
		fd = high;
	}
	struct stat st;
	if (ps_sys.fstat(fd, &st) < 0) {
		ps_sys.close(fd);
		return -1;
	}
	log_dev = st.st_dev;
	log_ino = st.st_ino;
	log_fd = fd;
	return 0;
}

/* The program may have closed our log file's number (closefrom) and got it
 * back for a file of its own: never write a log line into that. */
static int sink(void)
{
	struct stat st;
	if (log_fd != 2 && (ps_sys.fstat(log_fd, &st) < 0 || st.st_dev != log_dev || st.st_ino != log_ino))
		log_fd = 2;
	return log_fd;
}

/* The holding thread's line goes to the hold buffer if it fits. */
static bool hold_line(const char *body, size_t len)
{
	if (!__atomic_load_n(&holding, __ATOMIC_ACQUIRE) || !pthread_equal(holder, pthread_self()) ||
	    len > sizeof held - held_len)
		return false;
	memcpy(held + held_len, body, len);
	held_len += len;
	return true;
}

void ps_log_write(int level, const char *func, const char *fmt, ...)
{
	int saved = errno;
	char line[512];
	int n = snprintf(line, sizeof line, "poolshim[%d]: ", (int)ps_sys.getpid());
	int prefix = n;
	/* function names mean something to the shim's developers only */
	if (n > 0 && level >= PS_LOG_DEBUG)
		n += snprintf(line + n, sizeof line - (size_t)n, "%s: %s: ", labels[level], func);
	else if (n > 0)
		n += snprintf(line + n, sizeof line - (size_t)n, "%s: ", labels[level]);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && n < (int)sizeof line)
		n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof line - 1)
		n = (int)sizeof line - 2;
	if (n > 0) {
		line[n++] = '\n';
		if (!hold_line(line + prefix, (size_t)(n - prefix)))
			(void)ps_sys.write(sink(), line, (size_t)n);
	}
	errno = saved;
}

void ps_log_hold(void)
{
	holder = pthread_self();
	held_len = 0;
	__atomic_store_n(&holding, true, __ATOMIC_RELEASE);
}

uint32_t ps_log_held_digest(void)
{
	/* FNV-1a: stable across processes and builds, which is all it needs */
	uint32_t h = 2166136261u;
	if (held_len == 0)
		return 0;
	for (size_t i = 0; i < held_len; i++)
		h = (h ^ (uint8_t)held[i]) * 16777619u;
	return h ? h : 1;
}

void ps_log_release(bool drop)
{
	int saved = errno;
	__atomic_store_n(&holding, false, __ATOMIC_RELEASE);
	char line[600];
	int prefix = snprintf(line, sizeof line, "poolshim[%d]: ", (int)ps_sys.getpid());
	for (size_t off = 0; !drop && off < held_len;) {
		const char *nl = memchr(held + off, '\n', held_len - off);
		size_t len = (nl ? (size_t)(nl - held - off) + 1 : held_len - off);
		if (len > sizeof line - (size_t)prefix)
			len = sizeof line - (size_t)prefix;
		memcpy(line + prefix, held + off, len);
		(void)ps_sys.write(sink(), line, (size_t)prefix + len);
		off += len;
	}
	held_len = 0;
	errno = saved;
}
