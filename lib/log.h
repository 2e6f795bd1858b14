/* Levelled logging to stderr (or POOLSHIM_LOG_FILE).  Never stdout: the shim
 * must not change a program's output.  A line reads
 *   poolshim[PID]: warning: what happened
 * and only debug lines name the function that wrote them:
 *   poolshim[PID]: debug: checkin: fd 5 ... */
#ifndef POOLSHIM_LOG_H
#define POOLSHIM_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum ps_log_level {
	PS_LOG_OFF = 0,
	PS_LOG_ERROR,
	PS_LOG_WARN,
	PS_LOG_INFO,
	PS_LOG_DEBUG,
};

extern int ps_log_level;

/* fd the log goes to; 2 by default.  The log does not own fd 2. */
void ps_log_set_fd(int fd);
int ps_log_fd(void);

/* Opens `path` for appending, moved above the program's low descriptors.
 * Returns 0, or -1 with errno (the log stays on stderr). */
int ps_log_open_file(const char *path, int fd_floor);

/* "off"/"error"/... -> level; -1 if unknown. */
int ps_log_parse_level(const char *s);

void ps_log_write(int level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Holding.  Start-up parses the configuration before it knows where the log
 * goes (POOLSHIM_LOG_FILE is part of it), and a child process would repeat
 * warnings its parent already printed.  So start-up holds the lines the
 * calling thread logs, opens the log file, and then writes them there or
 * drops them (see PS_ENV_WARNED).  Lines logged by other threads meanwhile,
 * or that do not fit the hold buffer, are written at once.
 */
void ps_log_hold(void);
/* Digest of the held lines' text, pid left out, so a child holding the same
 * warnings gets the same value; 0 when nothing is held. */
uint32_t ps_log_held_digest(void);
/* Writes the held lines to the sink (or drops them) and stops holding. */
void ps_log_release(bool drop);

/* Exported by the first process of a tree that printed configuration
 * warnings, with the digest of those warnings in hex: a descendant that
 * would print the same warnings stays quiet; one whose configuration
 * differs prints its own and exports their digest to its children. */
#define PS_ENV_WARNED "POOLSHIM_WARNED"

#define PS_LOG(level, ...)                                                   \
	do {                                                                 \
		if (__builtin_expect(ps_log_level >= (level), 0))            \
			ps_log_write((level), __func__, __VA_ARGS__);        \
	} while (0)

#define PS_LOG_ERROR(...) PS_LOG(PS_LOG_ERROR, __VA_ARGS__)
#define PS_LOG_WARN(...) PS_LOG(PS_LOG_WARN, __VA_ARGS__)
#define PS_LOG_INFO(...) PS_LOG(PS_LOG_INFO, __VA_ARGS__)
#define PS_LOG_DEBUG(...) PS_LOG(PS_LOG_DEBUG, __VA_ARGS__)

#endif
