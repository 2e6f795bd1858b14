/*
 * The hazard suite: one regression test per hazard found since the first
 * version (HAZARDS.md 19-22) and for the signal-handler close of 17, each
 * named after the hazard.  Each test runs the same hazard_client program
 * twice against a fresh safety_server (or echo_server): first without the
 * shim (the control: what the program sees natively), then under
 * LD_PRELOAD=libpoolshim.so.  The program checks its own results (answers,
 * errors, EOF, timing, signals, its descriptors) and exits 1 with "FAIL: ..."
 * lines when they differ from what libc gives it; the test adds what only
 * the server can tell (how many connections it accepted: the episode really
 * went through a pooled connection, and pooling still works afterwards).
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>

static void hazards_setup(void)
{
	it_setup();
	it_set_child_timeout(20000);
}

TestSuite(hazards, .init = hazards_setup, .fini = it_teardown, .timeout = 60);

#define OUT_FMT "\nexit=%d\nstdout:\n%s\nstderr:\n%s"
#define OUT_ARGS(p) (p).code, (p).out, (p).err

static struct it_proc proc; /* 128 KiB of captured output: not on the stack */

struct hazard {
	const char *scenario;
	const char *arg;                 /* NULL: none */
	const char *server;              /* env name of the server: SAFETY_SERVER, ECHO_SERVER */
	const char *const *server_args;  /* may be NULL */
	const char *const *env;          /* for the client, may be NULL */
};

/* One hazard_client run against a server of its own; the server's accepted
 * count. */
static long run_once(const struct hazard *h, bool shim)
{
	struct it_server s;
	char portbuf[16];
	it_server_start_prog(&s, it_env_path(h->server ? h->server : "SAFETY_SERVER"), h->server_args);
	snprintf(portbuf, sizeof portbuf, "%d", s.port);
	const char *argv[] = { it_env_path("HAZARD_CLIENT"), h->scenario, portbuf, h->arg, NULL };
	it_run(&proc, argv, shim, h->env);
	it_server_stop(&s);
	return s.accepted;
}

/* The control without the shim, then the run under it: the program must pass
 * its own checks both times.  Returns the accepted count of the shim run. */
static long hazard_test(const struct hazard *h)
{
	long plain = run_once(h, false);
	cr_assert_eq(proc.code, 0, "%s without the shim (the control) failed: the test is wrong" OUT_FMT,
		     h->scenario, OUT_ARGS(proc));
	long shimmed = run_once(h, true);
	cr_log_info("%s: server accepted %ld connections without the shim, %ld with it", h->scenario, plain,
		    shimmed);
	cr_assert_eq(proc.code, 0, "%s under the shim: the program saw what it does not see without it" OUT_FMT,
		     h->scenario, OUT_ARGS(proc));
	return shimmed;
}

/* The pooled connection the episode needs was really handed out. */
static void assert_pooled(const struct hazard *h, long accepted, long at_most)
{
	cr_assert_leq(accepted, at_most,
		      "%s under the shim: the server accepted %ld connections (at most %ld if pooled)" OUT_FMT,
		      h->scenario, accepted, at_most, OUT_ARGS(proc));
}

/* ---- HAZARDS.md 19: a cancel is not a stale reuse ----------------------------- */

/* Thread B's shutdown(SHUT_RDWR) cancels thread A's recv on a connection
 * from the pool: A gets EOF at once, and the server ran the request once
 * (not again on a new connection, as a stale-reuse resend would). */
Test(hazards, cancel_by_shutdown_is_not_a_second_execution)
{
	const struct hazard h = { .scenario = "cancel_shutdown" };
	/* pooled cycle + cancelled reuse, then the COUNT connection */
	assert_pooled(&h, hazard_test(&h), 2);
}

/* ---- HAZARDS.md 20: asynchronous paths outlive their record ------------------- */

/* B closes the fd A is blocked on; /dev/null takes the number; then the
 * server drops A's request.  The number must still be /dev/null. */
Test(hazards, late_recv_after_close_does_not_replace_a_file)
{
	const struct hazard h = { .scenario = "close_then_file" };
	/* one connection: pooled, then reused by A */
	assert_pooled(&h, hazard_test(&h), 1);
}

/* B closes the fd A is blocked on and connects a new socket on the same
 * number; A's answer arrives late.  It must not count against the new
 * socket ("server speaks first" would end pooling for the destination):
 * the 20 cycles after it are pooled, on the new socket's connection. */
Test(hazards, late_recv_after_close_does_not_land_on_the_next_socket)
{
	const struct hazard h = { .scenario = "close_then_socket", .arg = "20" };
	/* pooled cycle, A's reused connection, the new socket's; + 1 spare */
	assert_pooled(&h, hazard_test(&h), 3);
}

/* ---- HAZARDS.md 21: requests written in several writes ------------------------ */

/* The server ends the pooled connection after the checkout, while it is
 * idle; the program writes "REQ " and "p1\n", then reads.  Natively the
 * connection is new and the answer comes at once. */
static void split_write_test(const char *variant)
{
	const struct hazard h = { .scenario = "split_write", .arg = variant };
	/* pooled cycle + the replacement of the stale one */
	assert_pooled(&h, hazard_test(&h), 2);
}

Test(hazards, split_write_request_after_idle_fin_sigpipe_default) { split_write_test("fin-dfl"); }

Test(hazards, split_write_request_after_idle_rst_sigpipe_default) { split_write_test("rst-dfl"); }

Test(hazards, split_write_request_after_idle_fin_sigpipe_ignored) { split_write_test("fin-ign"); }

Test(hazards, split_write_request_after_idle_rst_sigpipe_ignored) { split_write_test("rst-ign"); }

/* ---- HAZARDS.md 22: dead before first use, seen through SO_ERROR -------------- */

/* A non-blocking connect hands out a pooled connection; the server resets
 * it (idle 200 ms after an answer) before the program's first I/O.  A
 * fresh connection is writable with SO_ERROR 0; so must this one be. */
Test(hazards, nonblocking_reused_connect_reset_while_idle_poll)
{
	const struct hazard h = { .scenario = "nonblock_dead", .arg = "poll" };
	assert_pooled(&h, hazard_test(&h), 2);
}

Test(hazards, nonblocking_reused_connect_reset_while_idle_epoll)
{
	const struct hazard h = { .scenario = "nonblock_dead", .arg = "epoll" };
	assert_pooled(&h, hazard_test(&h), 2);
}

/* ---- HAZARDS.md 17: a signal handler closes the program's fd ------------------- */

/* A 1 kHz SIGALRM handler closes the current socket while connect() runs
 * on it (where the checkout happens), during 3 s of socket/connect/request/
 * close cycles; the program never closes a socket the handler closed.  Once
 * everything is closed and the pool has drained (0.2 s idle timeout), the
 * program holds exactly the descriptors it started with and no connection
 * to the server is left ESTABLISHED.  (safety's
 * signal_handler_closes_tracked_fds closes every fd a second time, which
 * hides the leak, and allows the pool's share of descriptors.) */
Test(hazards, signal_handler_close_leaks_no_fd_or_connection)
{
	const char *const env[] = { "POOLSHIM_IDLE_TIMEOUT=0.2", NULL };
	const struct hazard h = {
		.scenario = "signal_close_strict", .arg = "3000", .server = "ECHO_SERVER", .env = env
	};
	hazard_test(&h);
}

/* ---- HAZARDS.md 21/22: a reconnect inside a non-blocking call ---------------- */

/* The pooled connection is reset while idle and the server's listen queue
 * is full: a non-blocking program's write must not wait for the shim's
 * reconnect (natively its connect is simply in progress). */
Test(hazards, nonblocking_write_never_blocks_in_stale_reconnect)
{
	const char *const sargs[] = { "--backlog", "0", NULL };
	const struct hazard h = { .scenario = "nonblock_write_backlog", .server_args = sargs };
	hazard_test(&h);
}

/* ---- HAZARDS.md 21: split writes on a reused connection ------------------------ */

/* write(head), write(rest), read on connections from the pool: Nagle on the
 * client must not wait for the server's delayed ACK (40 ms a request). */
Test(hazards, split_writes_on_reused_connection_are_not_delayed)
{
	const struct hazard h = { .scenario = "split_latency", .arg = "30" };
	assert_pooled(&h, hazard_test(&h), 2);
}
