/*
 * The POOLSHIM_* variables, the reaper and the launcher, as a program sees
 * them: each test runs echo_client (or a scenario) against its own
 * echo_server and counts the connections the server accepted, with a
 * setting that must change that count and one that must not.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(tuning, .init = it_setup, .fini = it_teardown, .timeout = 120);

#define OUT_FMT "\nexit %d\nstdout:\n%s\nstderr:\n%s"
#define OUT_ARGS(p) (p).code, (p).out, (p).err

static struct it_proc proc;

/* Accepted connections for `requests` cycles with extra environment. */
static long accepted_with(const char *const *env, const char *requests, const char *sleep_ms)
{
	struct it_server s;
	struct it_client_summary sum;
	const char *const args[] = { "--requests", requests, "--sleep-ms", sleep_ms, NULL };
	it_server_start(&s, NULL);
	it_run_client(&proc, s.port, args, true, env);
	it_server_stop(&s);
	cr_assert(it_parse_client(&proc, &sum), "no summary line" OUT_FMT, OUT_ARGS(proc));
	cr_assert_eq(sum.ok, atol(requests), "ok=%ld" OUT_FMT, sum.ok, OUT_ARGS(proc));
	cr_assert_eq(sum.mismatches + sum.errors, 0, "mismatches or errors" OUT_FMT, OUT_ARGS(proc));
	return s.accepted;
}

Test(tuning, disable_passes_everything_through)
{
	const char *const off[] = { "POOLSHIM_DISABLE=1", NULL };
	const char *const on[] = { "POOLSHIM_DISABLE=0", NULL };
	cr_assert_eq(accepted_with(off, "100", "0"), 100);
	cr_assert_eq(accepted_with(on, "100", "0"), 1);
}

Test(tuning, ports_filter_pools_only_listed_ports)
{
	const char *const other[] = { "POOLSHIM_PORTS=1-1000", NULL };
	const char *const all[] = { "POOLSHIM_PORTS=1024-65535", NULL };
	cr_assert_eq(accepted_with(other, "100", "0"), 100, "a port outside POOLSHIM_PORTS was pooled");
	cr_assert_eq(accepted_with(all, "100", "0"), 1);
}

Test(tuning, exclude_keeps_destinations_out)
{
	const char *const host[] = { "POOLSHIM_EXCLUDE=127.0.0.1", NULL };
	const char *const net[] = { "POOLSHIM_EXCLUDE=127.0.0.0/8", NULL };
	const char *const loopback[] = { "POOLSHIM_EXCLUDE=localhost", NULL };
	const char *const elsewhere[] = { "POOLSHIM_EXCLUDE=10.0.0.0/8,[::1]:80", NULL };
	cr_assert_eq(accepted_with(host, "100", "0"), 100);
	cr_assert_eq(accepted_with(net, "100", "0"), 100);
	cr_assert_eq(accepted_with(loopback, "100", "0"), 100);
	cr_assert_eq(accepted_with(elsewhere, "100", "0"), 1);
}

/* Changed with fail-closed configuration: a cap that cannot be read used to
 * fall back to its default and pool; now it turns pooling off. */
Test(tuning, bad_value_warns_once_and_fails_closed)
{
	const char *const bad[] = { "POOLSHIM_MAX_IDLE_PER_HOST=lots", NULL };
	cr_assert_eq(accepted_with(bad, "100", "0"), 100, "an unreadable cap must not pool");
	int lines = 0;
	for (const char *p = proc.err; (p = strstr(p, "POOLSHIM_MAX_IDLE_PER_HOST")); p++)
		lines++;
	cr_assert_eq(lines, 1, "expected one warning line" OUT_FMT, OUT_ARGS(proc));
	cr_assert(!strstr(proc.out, "poolshim"), "the shim wrote to stdout" OUT_FMT, OUT_ARGS(proc));
}

/* The examples: each used to warn and pool anyway. */
Test(tuning, unparseable_settings_pool_nothing)
{
	const char *const ports[] = { "POOLSHIM_PORTS=80, 8080", NULL };
	const char *const disable[] = { "POOLSHIM_DISABLE=true", NULL };
	const char *const protocols[] = { "POOLSHIM_PROTOCOLS=http,bogus", NULL };
	cr_assert_eq(accepted_with(ports, "50", "0"), 50, "a bad POOLSHIM_PORTS pooled");
	cr_assert_eq(accepted_with(disable, "50", "0"), 50, "POOLSHIM_DISABLE=true pooled");
	cr_assert_eq(accepted_with(protocols, "50", "0"), 50, "a bad POOLSHIM_PROTOCOLS pooled");
}

Test(tuning, max_reuse_bounds_uses_of_a_connection)
{
	/* one new use plus four reuses per connection: 50 requests, 10 connections */
	const char *const four[] = { "POOLSHIM_MAX_REUSE=4", NULL };
	cr_assert_eq(accepted_with(four, "50", "0"), 10);
}

Test(tuning, max_lifetime_retires_old_connections)
{
	/* 20 requests 50 ms apart last about 1 s: with a 0.2 s lifetime each
	 * connection serves a few requests; with none, one serves them all */
	const char *const short_life[] = { "POOLSHIM_MAX_LIFETIME=0.2", NULL };
	const char *const no_limit[] = { "POOLSHIM_MAX_LIFETIME=0", NULL };
	long n = accepted_with(short_life, "20", "50");
	cr_assert(n >= 3 && n <= 12, "accepted %ld connections, expected 3..12" OUT_FMT, n, OUT_ARGS(proc));
	cr_assert_eq(accepted_with(no_limit, "20", "50"), 1);
}

Test(tuning, idle_timeout_expires_connections_at_checkout)
{
	/* requests 300 ms apart: a 0.1 s idle timeout must reconnect each time */
	const char *const quick[] = { "POOLSHIM_IDLE_TIMEOUT=0.1", NULL };
	const char *const slow[] = { "POOLSHIM_IDLE_TIMEOUT=5", NULL };
	cr_assert_eq(accepted_with(quick, "5", "300"), 5);
	cr_assert_eq(accepted_with(slow, "5", "300"), 1);
}

static void run_reaper(const char *timeout, struct it_server *s)
{
	char env_timeout[64];
	snprintf(env_timeout, sizeof env_timeout, "POOLSHIM_IDLE_TIMEOUT=%s", timeout);
	const char *const env[] = { env_timeout, NULL };
	char port[16];
	it_server_start(s, NULL);
	snprintf(port, sizeof port, "%d", s->port);
	const char *const argv[] = { it_env_path("SCENARIO"), "reaper_idle", port, NULL };
	it_run(&proc, argv, true, env);
	it_server_stop(s);
}

Test(tuning, reaper_closes_idle_connection_when_program_is_quiet)
{
	struct it_server s;
	run_reaper("1", &s);
	cr_assert_eq(proc.code, 0, "reaper_idle" OUT_FMT, OUT_ARGS(proc));
	unsigned long long reaped = 0;
	cr_assert(it_stats_value(proc.pid, "reaped", &reaped, NULL), "no stats:\n%s", it_stats_text());
	cr_assert_eq(reaped, 1, "reaped=%llu:\n%s", reaped, it_stats_text());

	/* control: with the default 15 s timeout the connection is still open */
	run_reaper("15", &s);
	cr_assert_eq(proc.code, 1, "the control must find the idle socket" OUT_FMT, OUT_ARGS(proc));
}

Test(tuning, launcher_preloads_and_sets_variables)
{
	if (getenv("POOLSHIM_PRELOAD_PREFIX"))
		cr_skip_test("a sanitizer build's library needs its runtime preloaded first");
	struct it_server s;
	char port[16];
	it_server_start(&s, NULL);
	snprintf(port, sizeof port, "%d", s.port);
	const char *const argv[] = { it_env_path("POOLSHIM_LAUNCHER"), "--stats", "--max-idle-per-host", "2",
				     "--", it_env_path("ECHO_CLIENT"), "--port", port, "--requests", "100",
				     NULL };
	it_run(&proc, argv, false, NULL);
	it_server_stop(&s);
	cr_assert_eq(proc.code, 0, "launcher" OUT_FMT, OUT_ARGS(proc));
	cr_assert_eq(s.accepted, 1, "accepted %ld" OUT_FMT, s.accepted, OUT_ARGS(proc));
	cr_assert(strstr(proc.err, "99 reused from the pool"), "no stats block on stderr" OUT_FMT,
		  OUT_ARGS(proc));
}
