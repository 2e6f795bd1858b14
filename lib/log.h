/* Levelled logging to stderr (or POOLSHIM_LOG_FILE).  Never stdout: the shim
 * must not change a program's output.  Lines carry level, pid and function. */
#ifndef POOLSHIM_LOG_H
#define POOLSHIM_LOG_H

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
