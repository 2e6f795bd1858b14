/*
 * Runs the scenario program (scenario.c) against a fresh echo_server, under
 * the shim and, as a sanity control, without it (--no-reuse-check: the
 * connid-equality checks need pooling, every other check must hold without
 * the shim too).
 */
#include "harness.h"

#include <criterion/criterion.h>
#include <stdio.h>

TestSuite(scenarios, .init = it_setup, .fini = it_teardown, .timeout = 120);

static void run_scenario(const char *name, bool shim)
{
	struct it_server s;
	it_server_start(&s, NULL);
	char port[16];
	snprintf(port, sizeof port, "%d", s.port);
	const char *scenario = it_env_path("SCENARIO");
	const char *argv_shim[] = { scenario, name, port, NULL };
	const char *argv_ctl[] = { scenario, "--no-reuse-check", name, port, NULL };
	struct it_proc p;
	it_run(&p, shim ? argv_shim : argv_ctl, shim, NULL);
	it_server_stop(&s);
	cr_assert_eq(p.code, 0, "scenario %s %s: exit status %d\nstdout:\n%s\nstderr:\n%s\nserver: %s\nstats: %s", name,
		     shim ? "under the shim" : "without the shim (control)", p.code, p.out, p.err, s.out,
		     it_stats_text());
}

Test(scenarios, flags_carried_to_reused_connection) { run_scenario("flags", true); }

Test(scenarios, options_not_leaked_between_users) { run_scenario("options", true); }

Test(scenarios, bind_pooled_under_bound_key) { run_scenario("bind", true); }

Test(scenarios, raw_close_fd_reuse_closes_file) { run_scenario("raw_close_fd_reuse", true); }

Test(scenarios, second_connect_fails_with_eisconn) { run_scenario("second_connect_eisconn", true); }

/* controls: the scenarios' own checks are right for plain libc */
Test(scenarios, flags_control_without_shim) { run_scenario("flags", false); }

Test(scenarios, options_control_without_shim) { run_scenario("options", false); }

Test(scenarios, bind_control_without_shim) { run_scenario("bind", false); }

Test(scenarios, raw_close_fd_reuse_control_without_shim) { run_scenario("raw_close_fd_reuse", false); }

Test(scenarios, second_connect_control_without_shim) { run_scenario("second_connect_eisconn", false); }
