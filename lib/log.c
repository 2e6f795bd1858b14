/* Owns the log sink and level.  A line is formatted on the stack and written
 * with one write(2) so lines from threads and processes do not interleave;
 * errno is preserved so logging never changes what a wrapper reports. */
#include "log.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
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
	if (fd != 2 && fstat(fd, &st) == 0) {
		log_dev = st.st_dev;
		log_ino = st.st_ino;
	}
}

static const char *const names[] = { "off", "error", "warn", "info", "debug" };

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
	if (fstat(fd, &st) < 0) {
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
	if (log_fd != 2 && (fstat(log_fd, &st) < 0 || st.st_dev != log_dev || st.st_ino != log_ino))
		log_fd = 2;
	return log_fd;
}

void ps_log_write(int level, const char *func, const char *fmt, ...)
{
	int saved = errno;
	char line[512];
	int n = snprintf(line, sizeof line, "poolshim[%d] %s %s: ", (int)ps_sys.getpid(),
			 names[level], func);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && n < (int)sizeof line)
		n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof line - 1)
		n = (int)sizeof line - 2;
	if (n > 0) {
		line[n++] = '\n';
		(void)ps_sys.write(sink(), line, (size_t)n);
	}
	errno = saved;
}
