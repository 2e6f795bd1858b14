/*
 * Pooling through the shim with echo_client: sequential cycles, threads,
 * IPv6, non-blocking connect, server-first protocols and the stats file.
 * Where it makes an assertion meaningful, the same run without the shim is
 * the control.
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>

TestSuite(pooling, .init = it_setup, .fini = it_teardown, .timeout = 150);

/* Full diagnostic for a failed client run. */
#define CLIENT_MSG(p) "exit=%d\nstdout: %s\nstderr: %s", (p).code, (p).out, (p).err

struct run_result {
	struct it_proc proc;
	struct it_client_summary sum;
	long accepted;
	long server_requests;
};

/* One server, one client run with the given server and client arguments. */
static void run_once(struct run_result *r, const char *const *server_args,
		     const char *const *client_args, bool shim, const char *const *extra_env)
{
	struct it_server s;
	it_server_start(&s, server_args);
	it_run_client(&r->proc, s.port, client_args, shim, extra_env);
	it_server_stop(&s);
	r->accepted = s.accepted;
	r->server_requests = s.requests;
	cr_assert(it_parse_client(&r->proc, &r->sum), "no summary line from echo_client\n" CLIENT_MSG(r->proc));
}

static void assert_clean(const struct run_result *r, long requests)
{
	cr_assert_eq(r->sum.requests, requests, "requests=%ld, expected %ld\n" CLIENT_MSG(r->proc),
		     r->sum.requests, requests, r->proc.code, r->proc.out, r->proc.err);
	cr_assert_eq(r->sum.mismatches, 0, "mismatches=%ld\n" CLIENT_MSG(r->proc), r->sum.mismatches,
		     r->proc.code, r->proc.out, r->proc.err);
	cr_assert_eq(r->sum.errors, 0, "errors=%ld\n" CLIENT_MSG(r->proc), r->sum.errors, r->proc.code,
		     r->proc.out, r->proc.err);
	cr_assert_eq(r->sum.ok, requests, "ok=%ld, expected %ld\n" CLIENT_MSG(r->proc), r->sum.ok, requests,
		     r->proc.code, r->proc.out, r->proc.err);
	cr_assert_eq(r->proc.code, 0, "echo_client exit status\n" CLIENT_MSG(r->proc), r->proc.code,
		     r->proc.out, r->proc.err);
}

static const char *const cycle_3000[] = { "--requests", "3000", NULL };

Test(pooling, sequential_cycles_open_one_connection)
{
	struct run_result r;
	run_once(&r, NULL, cycle_3000, true, NULL);
	assert_clean(&r, 3000);
	cr_expect_eq(r.server_requests, 3000, "server counted requests=%ld", r.server_requests);
	cr_assert_eq(r.accepted, 1, "with the shim: server accepted=%ld connections for 3000 cycles, expected 1\nstats: %s",
		     r.accepted, it_stats_text());

	/* control: the same run without the shim opens one connection per cycle */
	struct run_result c;
	run_once(&c, NULL, cycle_3000, false, NULL);
	assert_clean(&c, 3000);
	cr_assert_eq(c.accepted, 3000, "control without the shim: accepted=%ld, expected 3000", c.accepted);
}

Test(pooling, stats_file_written)
{
	struct run_result r;
	run_once(&r, NULL, cycle_3000, true, NULL);
	assert_clean(&r, 3000);
	unsigned long long hits = 0, connects = 0;
	int lines = 0;
	bool found = it_stats_value(r.proc.pid, "reuse_hits", &hits, &lines);
	cr_assert(found, "no reuse_hits for pid %d in %s:\n%s", (int)r.proc.pid, it_stats_path(), it_stats_text());
	cr_assert_eq(lines, 1, "expected exactly one stats line for pid %d, got %d:\n%s", (int)r.proc.pid, lines,
		     it_stats_text());
	cr_assert_geq(hits, 2999, "reuse_hits=%llu, expected >= 2999:\n%s", hits, it_stats_text());
	cr_assert(it_stats_value(r.proc.pid, "connects", &connects, NULL), "no connects counter:\n%s",
		  it_stats_text());
	cr_expect_eq(r.accepted, 1, "server accepted=%ld", r.accepted);
}

static unsigned long long stat_of(pid_t pid, const char *key)
{
	unsigned long long v = 0;
	cr_assert(it_stats_value(pid, key, &v, NULL), "no %s counter for pid %d in the stats file:\n%s", key, (int)pid,
		  it_stats_text());
	return v;
}

/*
 * T threads each cycle 500 times.  A real connect happens only when the
 * key's idle list is empty, i.e. every live connection is held by another
 * thread, so at most T connections are ever alive: accepted <= T unless the
 * shim closed some (evicted, stale, reaped).  The per-key idle cap (default
 * 4) does evict when more than 4 threads close at once, so these tests set
 * POOLSHIM_MAX_IDLE_PER_HOST=T and then expect no eviction at all.
 */
static void threads_test(const char *threads_s, long threads)
{
	const char *const args[] = { "--threads", threads_s, "--requests", "500", NULL };
	char cap[64];
	snprintf(cap, sizeof cap, "POOLSHIM_MAX_IDLE_PER_HOST=%ld", threads);
	const char *const env[] = { cap, NULL };
	struct run_result r;
	run_once(&r, NULL, args, true, env);
	assert_clean(&r, threads * 500);
	cr_assert_leq(r.accepted, threads, "--threads %ld: server accepted=%ld connections, expected <= %ld\nstats: %s",
		      threads, r.accepted, threads, it_stats_text());
	cr_assert_eq(stat_of(r.proc.pid, "evicted"), 0, "evictions with %s:\n%s", cap, it_stats_text());
}

Test(pooling, threads_4_open_at_most_4_connections) { threads_test("4", 4); }

Test(pooling, threads_16_open_at_most_16_connections) { threads_test("16", 16); }

/*
 * Default per-key cap (4) with 16 threads: connections evicted by the cap
 * may be replaced by new ones, but only those: accepted <= 16 + closed by
 * the shim.
 */
Test(pooling, threads_16_default_cap_reconnects_only_after_evictions)
{
	const char *const args[] = { "--threads", "16", "--requests", "500", NULL };
	struct run_result r;
	run_once(&r, NULL, args, true, NULL);
	assert_clean(&r, 16 * 500);
	pid_t pid = r.proc.pid;
	unsigned long long closed = stat_of(pid, "evicted") + stat_of(pid, "stale_at_checkout") +
				    stat_of(pid, "reaped") + stat_of(pid, "identity_mismatches") +
				    stat_of(pid, "refused");
	cr_assert_leq((unsigned long long)r.accepted, 16 + closed,
		      "default cap, 16 threads: server accepted=%ld, expected <= 16 + %llu closed by the shim\nstats: %s",
		      r.accepted, closed, it_stats_text());
	cr_assert_eq((unsigned long long)r.accepted, stat_of(pid, "misses"),
		     "server accepted=%ld but the shim counted a different number of misses (real connects)\nstats: %s",
		     r.accepted, it_stats_text());
}

Test(pooling, ipv6_loopback_is_pooled)
{
	const char *const sargs[] = { "--family", "6", NULL };
	const char *const cargs[] = { "--family", "6", "--requests", "500", NULL };
	struct run_result r;
	run_once(&r, sargs, cargs, true, NULL);
	assert_clean(&r, 500);
	cr_assert_eq(r.accepted, 1, "IPv6: server accepted=%ld for 500 cycles, expected 1\nstats: %s", r.accepted,
		     it_stats_text());
}

Test(pooling, nonblocking_connect_with_poll)
{
	const char *const cargs[] = { "--nonblock", "--requests", "500", NULL };
	struct run_result r;
	run_once(&r, NULL, cargs, true, NULL);
	assert_clean(&r, 500);
	cr_assert_eq(r.accepted, 1, "--nonblock: server accepted=%ld for 500 cycles, expected 1\nstats: %s",
		     r.accepted, it_stats_text());
}

Test(pooling, greeting_server_each_connection_greeted)
{
	const char *const sargs[] = { "--mode", "greet", NULL };
	const char *const cargs[] = { "--mode", "greet", "--requests", "200", NULL };
	/* a reused connection never greets and echo_client waits 3 s for each
	 * missing greeting: fail in 20 s rather than 60 (200 good cycles take
	 * well under a second) */
	it_set_child_timeout(20000);
	struct run_result r;
	run_once(&r, sargs, cargs, true, NULL);
	assert_clean(&r, 200);
	cr_assert_eq(r.accepted, 200, "greet: server accepted=%ld, expected 200 (server-first connections must not be pooled)\nstats: %s",
		     r.accepted, it_stats_text());
}
