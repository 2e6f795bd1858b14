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
#include <stdbool.h>
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
	bool ready = !ps_config.disable && ps_state_init() == 0;
	/* the log file goes high, with the hidden descriptors, out of the
	 * numbers the program expects to get */
	if (ps_config.log_file[0] &&
	    ps_log_open_file(ps_config.log_file, ready ? ps_g.hidden_floor : 64) < 0)
		PS_LOG_WARN("cannot open POOLSHIM_LOG_FILE %s; logging to stderr", ps_config.log_file);
	if (ps_config.disable)
		return;
	if (!ready) {
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
	char text[2048];
	int n;
	if (ps_config.stats == PS_STATS_STDERR) {
		char prefix[32];
		snprintf(prefix, sizeof prefix, "poolshim[%d] ", (int)getpid());
		n = ps_stats_format_block(text, sizeof text, prefix);
		if (n > 0)
			(void)ps_sys.write(ps_log_fd(), text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
		return;
	}
	int fd = ps_sys.open(ps_config.stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		PS_LOG_WARN("cannot write POOLSHIM_STATS file %s", ps_config.stats_path);
		return;
	}
	/* one line of key=value per process, appended with one write */
	n = snprintf(text, sizeof text, "pid=%d ", (int)getpid());
	n += ps_stats_format(text + n, sizeof text - (size_t)n - 1);
	if (n > (int)sizeof text - 2)
		n = (int)sizeof text - 2;
	text[n++] = '\n';
	(void)ps_sys.write(fd, text, (size_t)n);
	ps_sys.close(fd);
}

__attribute__((destructor)) static void poolshim_dtor(void)
{
	if (ps_config.stats != PS_STATS_OFF)
		write_stats();
}
