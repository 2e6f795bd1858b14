/* Owns start-up and exit: configuration, the pool, fork handlers, and the
 * POOLSHIM_STATS report.  Start-up runs from the constructor, or from the
 * first socket() if another library's constructor gets there first. */
#include "real.h"

#include "config.h"
#include "log.h"
#include "state.h"
#include "stats.h"
#include "sys.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char *env(const char *name) { return getenv(name); }

static void init_once(void)
{
	ps_real_bind();
	ps_config_parse(&ps_config, env);
	if (ps_config.log_file[0] && ps_log_open_file(ps_config.log_file, 3) < 0)
		PS_LOG_WARN("cannot open POOLSHIM_LOG_FILE %s; logging to stderr", ps_config.log_file);
	if (ps_config.disable)
		return;
	if (ps_state_init() < 0) {
		PS_LOG_WARN("cannot allocate the descriptor table; passing everything through");
		return;
	}
	pthread_atfork(ps_fork_prepare, ps_fork_parent, ps_fork_child);
	ps_g.reaper = true;
}

void ps_shim_init(void) { pthread_once(&once, init_once); }

__attribute__((constructor)) static void poolshim_ctor(void) { ps_shim_init(); }

static void write_stats(void)
{
	char line[2048];
	int n = snprintf(line, sizeof line, "poolshim[%d] stats: ", (int)getpid());
	n += ps_stats_format(line + n, sizeof line - (size_t)n - 1);
	if (n > (int)sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	if (ps_config.stats == PS_STATS_STDERR) {
		(void)ps_sys.write(2, line, (size_t)n);
		return;
	}
	int fd = open(ps_config.stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		PS_LOG_WARN("cannot write POOLSHIM_STATS file %s", ps_config.stats_path);
		return;
	}
	/* the file gets plain key=value with the pid, one line per process */
	char rec[2048];
	int m = snprintf(rec, sizeof rec, "pid=%d ", (int)getpid());
	m += ps_stats_format(rec + m, sizeof rec - (size_t)m - 1);
	if (m > (int)sizeof rec - 2)
		m = (int)sizeof rec - 2;
	rec[m++] = '\n';
	(void)ps_sys.write(fd, rec, (size_t)m);
	ps_sys.close(fd);
}

__attribute__((destructor)) static void poolshim_dtor(void)
{
	if (ps_config.stats != PS_STATS_OFF)
		write_stats();
}
