/*
 * harness - process helpers for the poolshim integration tests.
 *
 * Every test starts its own echo_server (no preload), runs client processes
 * (echo_client or scenario) with or without LD_PRELOAD=libpoolshim.so, and
 * reads their output through plain pipes.  The Criterion runner itself never
 * has the shim preloaded.
 *
 * Paths come from the environment (set by meson's test()):
 *   POOLSHIM_LIB, ECHO_SERVER, ECHO_CLIENT, SCENARIO        required
 *   POOLSHIM_PRELOAD_PREFIX  optional, prepended to LD_PRELOAD (for example
 *                            libasan.so in a sanitizer build)
 *
 * Each child gets POOLSHIM_STATS=<per-test temp dir>/stats,
 * POOLSHIM_PROTOCOLS=http,redis,memcached,any unless the test sets its own
 * (the test servers' line protocol is not one the shim pools by default), a deadline
 * (it is SIGKILLed when it passes) and PR_SET_PDEATHSIG, so nothing outlives
 * a crashed test worker.  it_teardown() (the suites' .fini) kills and reaps
 * whatever is still running, also after a failed assertion.
 */
#ifndef POOLSHIM_IT_HARNESS_H
#define POOLSHIM_IT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define IT_CHILD_TIMEOUT_MS 60000
#define IT_OUT_MAX 65536

struct it_server {
	pid_t pid;
	int out_fd; /* read end of the server's stdout */
	int port;
	long accepted; /* filled by it_server_stop, -1 if not parsed */
	long requests;
	char out[4096]; /* everything the server printed on stdout */
	size_t out_len;
};

struct it_proc {
	pid_t pid;
	bool timed_out;
	bool exited; /* WIFEXITED */
	int code; /* exit code, or -signal if killed by a signal */
	char out[IT_OUT_MAX];
	size_t out_len;
	char err[IT_OUT_MAX];
	size_t err_len;
};

struct it_client_summary {
	long requests, ok, mismatches, errors, elapsed_ms;
};

/* Suite fixtures: per-test temp dir for the stats file; kill leftovers. */
void it_setup(void);
void it_teardown(void);

/* Deadline for the children of it_run in this test (default
 * IT_CHILD_TIMEOUT_MS); reset by it_setup. */
void it_set_child_timeout(int ms);

/* Path of a required environment variable; fails the test if unset. */
const char *it_env_path(const char *name);

/* Directory and stats file of the current test. */
const char *it_tmpdir(void);
const char *it_stats_path(void);

/*
 * Start echo_server with the given extra arguments (NULL-terminated, may be
 * NULL) and wait for its "PORT <n>" line.  Fails the test on any problem.
 */
void it_server_start(struct it_server *s, const char *const *args);

/* The same with another server program of the same command line and
 * output (safety_server). */
void it_server_start_prog(struct it_server *s, const char *server, const char *const *args);

/* SIGTERM, collect the final "accepted=<A> requests=<R>" line, reap. */
void it_server_stop(struct it_server *s);

/*
 * Run argv[0] with argv, wait for it (at most IT_CHILD_TIMEOUT_MS) and
 * capture stdout/stderr.  With shim, LD_PRELOAD is set to
 * "[$POOLSHIM_PRELOAD_PREFIX ]$POOLSHIM_LIB"; without it, LD_PRELOAD is
 * removed.  extra_env: "NAME=value" strings (NULL-terminated, may be NULL).
 */
void it_run(struct it_proc *p, const char *const *argv, bool shim, const char *const *extra_env);

/* Run echo_client --port <port> --quiet <args...>. */
void it_run_client(struct it_proc *p, int port, const char *const *args, bool shim,
		   const char *const *extra_env);

/* Parse the "requests=.. ok=.. mismatches=.. errors=.. elapsed_ms=.." line. */
bool it_parse_client(const struct it_proc *p, struct it_client_summary *sum);

/*
 * Look up "<key>=<value>" on the stats-file line of process pid.
 * Returns false if there is no such line or key.  *lines gets the number of
 * lines for that pid (may be NULL).
 */
bool it_stats_value(pid_t pid, const char *key, unsigned long long *value, int *lines);

/* Whole stats file as text (for failure messages); static buffer. */
const char *it_stats_text(void);

#endif
