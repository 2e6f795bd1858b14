/*
 * What a user reads on stderr: the exit summary of `poolshim --stats`
 * (first line in plain words, only from processes that connected), and the
 * configuration warnings (once per process tree, in POOLSHIM_LOG_FILE when
 * that is set).  Real processes against echo_server, through the launcher.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(messages, .init = it_setup, .fini = it_teardown, .timeout = 120);

#define OUT_FMT "\nexit %d\nstdout:\n%s\nstderr:\n%s"
#define OUT_ARGS(p) (p).code, (p).out, (p).err

static struct it_proc proc;

/* argv for `[env LD_PRELOAD=<runtime>] poolshim <args>`: a sanitizer build's
 * library needs its runtime first in LD_PRELOAD, and the launcher keeps what
 * is there in front.  env and the launcher exec, so the pid stays the
 * program's. */
static int launcher_argv(const char **argv)
{
	static char preload[4096];
	const char *prefix = getenv("POOLSHIM_PRELOAD_PREFIX");
	int k = 0;
	if (prefix && *prefix) {
		snprintf(preload, sizeof preload, "LD_PRELOAD=%s", prefix);
		argv[k++] = "/usr/bin/env";
		argv[k++] = preload;
	}
	argv[k++] = it_env_path("POOLSHIM_LAUNCHER");
	return k;
}

/* poolshim --stats -- echo_client --port P <args> against a server started
 * with server_args; returns the server's accepted count. */
static long run_with_stats(const char *const *server_args, const char *const *client_args)
{
	struct it_server s;
	char port[16];
	const char *argv[32];
	int k;
	it_server_start(&s, server_args);
	snprintf(port, sizeof port, "%d", s.port);
	k = launcher_argv(argv);
	argv[k++] = "--stats";
	argv[k++] = "--";
	argv[k++] = it_env_path("ECHO_CLIENT");
	argv[k++] = "--port";
	argv[k++] = port;
	argv[k++] = "--quiet";
	for (int i = 0; client_args[i]; i++)
		argv[k++] = client_args[i];
	argv[k] = NULL;
	it_run(&proc, argv, false, NULL);
	it_server_stop(&s);
	cr_assert_eq(proc.code, 0, "echo_client failed" OUT_FMT, OUT_ARGS(proc));
	return s.accepted;
}

/* The summary's first line is the first line on stderr, for this pid. */
static void assert_first_line(const char *want)
{
	char line[512];
	snprintf(line, sizeof line, "poolshim[%d]: %s\n", (int)proc.pid, want);
	cr_assert(strncmp(proc.err, line, strlen(line)) == 0, "expected first line\n%s" OUT_FMT, line,
		  OUT_ARGS(proc));
}

static int count(const char *haystack, const char *needle)
{
	int n = 0;
	for (const char *p = haystack; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

Test(messages, summary_of_a_pooled_loop)
{
	const char *const args[] = { "--requests", "100", NULL };
	cr_assert_eq(run_with_stats(NULL, args), 1);
	assert_first_line("100 connects, 99 reused from the pool");
}

Test(messages, summary_of_one_connect)
{
	const char *const args[] = { "--requests", "1", NULL };
	run_with_stats(NULL, args);
	assert_first_line("1 connect: nothing to reuse in one process; see --shared");
	cr_assert_eq(count(proc.err, "\n"), 1, "one line only" OUT_FMT, OUT_ARGS(proc));
}

Test(messages, summary_names_a_server_that_speaks_first)
{
	const char *const server[] = { "--mode", "greet", NULL };
	const char *const args[] = { "--requests", "20", "--mode", "greet", NULL };
	cr_assert_eq(run_with_stats(server, args), 20);
	assert_first_line("20 connects, 0 reused: the server speaks first (SMTP, FTP, SSH, ...); "
			  "such connections are never pooled");
}

Test(messages, summary_names_tls)
{
	const char *const server[] = { "--mode", "tls", NULL };
	const char *const args[] = { "--requests", "10", "--mode", "tls", NULL };
	cr_assert_eq(run_with_stats(server, args), 10);
	assert_first_line("10 connects, 0 reused: the connections use TLS, which cannot be pooled");
}

Test(messages, no_summary_from_processes_that_did_not_connect)
{
	struct it_server s;
	char cmd[1024];
	it_server_start(&s, NULL);
	/* a wrapper shell and its helpers, around the one process that connects */
	snprintf(cmd, sizeof cmd, "true; %s --port %d --quiet --requests 5; ls / >/dev/null; true",
		 it_env_path("ECHO_CLIENT"), s.port);
	const char *argv[16];
	int k = launcher_argv(argv);
	argv[k++] = "--stats";
	argv[k++] = "--";
	argv[k++] = "/bin/sh";
	argv[k++] = "-c";
	argv[k++] = cmd;
	argv[k] = NULL;
	it_run(&proc, argv, false, NULL);
	it_server_stop(&s);
	cr_assert_eq(proc.code, 0, OUT_FMT, OUT_ARGS(proc));
	cr_assert_eq(count(proc.err, "poolshim["), 2, "only echo_client's summary (2 lines)" OUT_FMT,
		     OUT_ARGS(proc));
	cr_assert_eq(count(proc.err, "5 connects, 4 reused from the pool"), 1, OUT_FMT, OUT_ARGS(proc));
}

static const char *const tree = "/bin/sh -c true; /bin/sh -c true; ls / >/dev/null; id >/dev/null";

Test(messages, config_warning_once_per_process_tree)
{
	const char *const env[] = { "POOLSHIM_MAX_IDLE_PER_HOST=lots", NULL };
	const char *const argv[] = { "/bin/sh", "-c", tree, NULL };
	it_run(&proc, argv, true, env);
	cr_assert_eq(proc.code, 0, OUT_FMT, OUT_ARGS(proc));
	cr_assert_eq(count(proc.err, "POOLSHIM_MAX_IDLE_PER_HOST"), 1, "one warning for 5 processes" OUT_FMT,
		     OUT_ARGS(proc));
	char want[128];
	snprintf(want, sizeof want, "poolshim[%d]: warning: POOLSHIM_MAX_IDLE_PER_HOST=\"lots\"", (int)proc.pid);
	cr_assert(strncmp(proc.err, want, strlen(want)) == 0, "the first process warns" OUT_FMT,
		  OUT_ARGS(proc));
}

Test(messages, a_child_with_other_settings_warns_for_itself)
{
	const char *const env[] = { "POOLSHIM_MAX_IDLE_PER_HOST=lots", NULL };
	const char *const argv[] = { "/bin/sh", "-c", "POOLSHIM_MAX_IDLE=many /bin/sh -c true; /bin/sh -c true",
				     NULL };
	it_run(&proc, argv, true, env);
	cr_assert_eq(count(proc.err, "POOLSHIM_MAX_IDLE=\"many\""), 1, OUT_FMT, OUT_ARGS(proc));
	/* the child's own set includes its parent's warning: printed again with it */
	cr_assert_eq(count(proc.err, "POOLSHIM_MAX_IDLE_PER_HOST"), 2, OUT_FMT, OUT_ARGS(proc));
}

Test(messages, config_warnings_go_to_the_log_file)
{
	char log_env[4200], path[4096];
	snprintf(path, sizeof path, "%s/shim.log", it_tmpdir());
	snprintf(log_env, sizeof log_env, "POOLSHIM_LOG_FILE=%s", path);
	const char *const env[] = { "POOLSHIM_MAX_IDLE_PER_HOST=lots", log_env, NULL };
	const char *const argv[] = { "/bin/sh", "-c", tree, NULL };
	it_run(&proc, argv, true, env);
	cr_assert_eq(proc.code, 0, OUT_FMT, OUT_ARGS(proc));
	cr_assert(!strstr(proc.err, "poolshim"), "a warning went to stderr" OUT_FMT, OUT_ARGS(proc));
	char text[4096] = { 0 };
	FILE *f = fopen(path, "r");
	cr_assert(f, "no log file %s" OUT_FMT, path, OUT_ARGS(proc));
	size_t n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	text[n] = '\0';
	cr_assert_eq(count(text, "warning: POOLSHIM_MAX_IDLE_PER_HOST=\"lots\""), 1, "log file:\n%s", text);
}
