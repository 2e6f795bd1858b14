/* Owns start-up and exit: configuration, the pool, fork handlers, and the
 * POOLSHIM_STATS report.  Start-up runs from the constructor, or from the
 * first socket() if another library's constructor gets there first.
 *
 * Configuration warnings: parsed before the log file is known, so they are
 * held (log.h) until the file is open, then printed there, or not at all
 * when an ancestor already printed the same ones (PS_ENV_WARNED). */
#include "real.h"

#include "config.h"
#include "log.h"
#include "shared.h"
#include "state.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;

static const char *env(const char *name) { return getenv(name); }

/*
 * Once per process tree: the first process that prints configuration
 * warnings exports their digest; its descendants inherit it through the
 * environment and drop the same warnings.  A program that execs with an
 * environment of its own making drops the marker with whatever else it
 * leaves out, and its child warns again: one warning too many, never one
 * lost.  setenv here runs in the constructor, before the program's main and
 * its threads.
 */
static void print_config_warnings(void)
{
	char hex[16];
	uint32_t digest = ps_log_held_digest();
	const char *seen = env(PS_ENV_WARNED);
	snprintf(hex, sizeof hex, "%08x", (unsigned)digest);
	bool repeat = digest && seen && strcmp(seen, hex) == 0;
	ps_log_release(repeat);
	if (digest && !repeat)
		setenv(PS_ENV_WARNED, hex, 1);
}

/* Counters describe this process: a forked child starts from zero, so its
 * summary is about its own connects, not its parent's. */
static void stats_child(void) { ps_stats_reset(); }

static void init_once(void)
{
	ps_real_bind();
	ps_log_hold();
	ps_config_parse(&ps_config, env);
	bool ready = !ps_config.disable && ps_state_init() == 0;
	ps_shared_init(); /* shared.h: its warnings are held with the others */
	/* the log file goes high, with the hidden descriptors, out of the
	 * numbers the program expects to get */
	if (ps_config.log_file[0] &&
	    ps_log_open_file(ps_config.log_file, ready ? ps_g.hidden_floor : 64) < 0)
		PS_LOG_WARN("cannot open POOLSHIM_LOG_FILE %s (%s); logging to stderr", ps_config.log_file,
			    strerror(errno));
	print_config_warnings();
	if (ps_config.disable)
		return;
	if (!ready) {
		PS_LOG_WARN("cannot allocate the descriptor table; passing everything through");
		return;
	}
	pthread_atfork(ps_fork_prepare, ps_fork_parent, ps_fork_child);
	pthread_atfork(NULL, NULL, stats_child);
	ps_g.reaper = true;
}

void ps_shim_init(void) { pthread_once(&once, init_once); }

__attribute__((constructor)) static void poolshim_ctor(void) { ps_shim_init(); }

/* POOLSHIM_STATS=1: the summary in words, where the log goes; only for a
 * process that made a connect the shim could pool (a wrapper script's
 * helpers stay quiet). */
static void write_summary(void)
{
	char text[4096];
	char prefix[32];
	uint64_t v[PS_ST_COUNT];
	struct ps_summary_ctx ctx = {
		.filters_set = !ps_config.ports_all || ps_config.n_excludes > 0,
		.shared = ps_config.shared,
	};
	ps_stats_snapshot(v);
	snprintf(prefix, sizeof prefix, "poolshim[%d]: ", (int)getpid());
	int n = ps_summary_format(text, sizeof text, prefix, v, &ctx);
	if (n > 0)
		(void)ps_sys.write(ps_log_fd(), text, (size_t)n < sizeof text ? (size_t)n : sizeof text - 1);
}

/* POOLSHIM_STATS=path: one `pid=... key=value ...` line per process,
 * appended with one write; scripts and tests parse it. */
static void write_stats_line(void)
{
	char text[2048];
	int fd = ps_sys.open(ps_config.stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		PS_LOG_WARN("cannot write POOLSHIM_STATS file %s (%s)", ps_config.stats_path, strerror(errno));
		return;
	}
	int n = snprintf(text, sizeof text, "pid=%d ", (int)getpid());
	n += ps_stats_format(text + n, sizeof text - (size_t)n - 1);
	if (n > (int)sizeof text - 2)
		n = (int)sizeof text - 2;
	text[n++] = '\n';
	(void)ps_sys.write(fd, text, (size_t)n);
	ps_sys.close(fd);
}

__attribute__((destructor)) static void poolshim_dtor(void)
{
	ps_shared_exit(); /* shared.h: the idle connections go to the keeper */
	if (ps_config.stats == PS_STATS_STDERR)
		write_summary();
	else if (ps_config.stats == PS_STATS_FILE)
		write_stats_line();
}
