/* stats.c and log.c: counters, their report line, levelled log lines. */
#include "helpers.h"
#include "log.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

Test(stats, every_counter_has_a_distinct_name)
{
	for (int i = 0; i < PS_ST_COUNT; i++) {
		const char *n = ps_stat_name((enum ps_stat)i);
		cr_assert_not_null(n, "counter %d has no name", i);
		cr_assert_gt(strlen(n), 0);
		cr_assert_null(strchr(n, ' '));
		cr_assert_null(strchr(n, '='));
		for (int j = 0; j < i; j++)
			cr_assert_str_neq(n, ps_stat_name((enum ps_stat)j));
	}
	cr_assert_str_eq(ps_stat_name(PS_ST_HITS), "reuse_hits");
	cr_assert_str_eq(ps_stat_name(PS_ST_CHECKINS), "checkins");
}

Test(stats, inc_get_reset)
{
	ps_stats_reset();
	cr_assert_eq(ps_stat_get(PS_ST_HITS), 0);
	ps_stat_inc(PS_ST_HITS);
	ps_stat_inc(PS_ST_HITS);
	ps_stat_inc(PS_ST_REAPED);
	cr_assert_eq(ps_stat_get(PS_ST_HITS), 2);
	cr_assert_eq(ps_stat_get(PS_ST_REAPED), 1);
	cr_assert_eq(ps_stat_get(PS_ST_MISSES), 0);
	ps_stats_reset();
	cr_assert_eq(ps_stat_get(PS_ST_HITS), 0);
	cr_assert_eq(ps_stat_get(PS_ST_REAPED), 0);
}

Test(stats, format_lists_every_counter_with_its_value)
{
	ps_stats_reset();
	for (int i = 0; i < PS_ST_COUNT; i++)
		for (int n = 0; n < i * 3 + 1; n++)
			ps_stat_inc((enum ps_stat)i);
	char buf[4096];
	int len = ps_stats_format(buf, sizeof buf);
	cr_assert_eq(len, (int)strlen(buf));
	cr_assert_null(strchr(buf, '\n'), "no newline");
	/* tokens in order, space separated, each name=value */
	char *save = NULL, *tok = strtok_r(buf, " ", &save);
	for (int i = 0; i < PS_ST_COUNT; i++) {
		cr_assert_not_null(tok, "missing counter %s", ps_stat_name((enum ps_stat)i));
		char want[96];
		snprintf(want, sizeof want, "%s=%d", ps_stat_name((enum ps_stat)i), i * 3 + 1);
		cr_assert_str_eq(tok, want);
		tok = strtok_r(NULL, " ", &save);
	}
	cr_assert_null(tok, "nothing after the last counter");
}

Test(stats, format_truncates_like_snprintf)
{
	ps_stats_reset();
	char full[4096];
	int want = ps_stats_format(full, sizeof full);
	char small[16];
	memset(small, 'Z', sizeof small);
	int got = ps_stats_format(small, 10);
	cr_assert_eq(got, want, "the full length is returned");
	cr_assert_eq(small[9], '\0', "terminated inside the buffer");
	cr_assert_eq(small[10], 'Z', "nothing written past len");
	cr_assert_arr_eq(small, full, 9);
}

Test(stats, snapshot_copies_every_counter)
{
	ps_stats_reset();
	for (int i = 0; i < PS_ST_COUNT; i++)
		for (int n = 0; n < i; n++)
			ps_stat_inc((enum ps_stat)i);
	uint64_t v[PS_ST_COUNT];
	ps_stats_snapshot(v);
	for (int i = 0; i < PS_ST_COUNT; i++)
		cr_assert_eq(v[i], (uint64_t)i, "%s", ps_stat_name((enum ps_stat)i));
}

static void *incrementer(void *arg)
{
	(void)arg;
	for (int i = 0; i < 100000; i++)
		ps_stat_inc(PS_ST_CONNECTS);
	return NULL;
}

Test(stats, parallel_increments_are_exact)
{
	ps_stats_reset();
	pthread_t th[4];
	for (int t = 0; t < 4; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, incrementer, NULL), 0);
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	cr_assert_eq(ps_stat_get(PS_ST_CONNECTS), 400000);
}

static void setup_log(void)
{
	ps_log_level = PS_LOG_WARN;
	t_log_capture_start();
}

Test(log, parse_level_names)
{
	cr_assert_eq(ps_log_parse_level("off"), PS_LOG_OFF);
	cr_assert_eq(ps_log_parse_level("error"), PS_LOG_ERROR);
	cr_assert_eq(ps_log_parse_level("warn"), PS_LOG_WARN);
	cr_assert_eq(ps_log_parse_level("info"), PS_LOG_INFO);
	cr_assert_eq(ps_log_parse_level("debug"), PS_LOG_DEBUG);
	cr_assert_eq(ps_log_parse_level("trace"), -1);
	cr_assert_eq(ps_log_parse_level(""), -1);
}

Test(log, default_sink_is_stderr)
{
	cr_assert_eq(ps_log_fd(), 2);
	cr_assert_eq(ps_log_level, PS_LOG_WARN);
}

Test(log, level_filters_lines, .init = setup_log)
{
	PS_LOG_DEBUG("debug %d", 1);
	PS_LOG_INFO("info %d", 2);
	cr_assert_eq(t_log_total_lines(), 0, "log was [%s]", t_log_captured());
	PS_LOG_WARN("warn %d", 3);
	PS_LOG_ERROR("error %d", 4);
	cr_assert_eq(t_log_total_lines(), 2);
	cr_assert_eq(t_log_count_lines("warn 3"), 1);
	cr_assert_eq(t_log_count_lines("error 4"), 1);
	ps_log_level = PS_LOG_OFF;
	PS_LOG_ERROR("error %d", 5);
	cr_assert_eq(t_log_total_lines(), 2, "off writes nothing");
	ps_log_level = PS_LOG_DEBUG;
	PS_LOG_DEBUG("debug %d", 6);
	cr_assert_eq(t_log_count_lines("debug 6"), 1);
}

Test(log, line_format, .init = setup_log)
{
	PS_LOG_WARN("hello %s", "world");
	char want[128];
	snprintf(want, sizeof want, "poolshim[%d]: warning: hello world\n", (int)getpid());
	cr_assert_str_eq(t_log_captured(), want);
	cr_assert_eq(t_log_total_lines(), 1);
}

static void named_function(void) { PS_LOG_ERROR("x"); }
static void debug_function(void) { PS_LOG_DEBUG("y"); }

Test(log, only_debug_lines_name_the_function, .init = setup_log)
{
	ps_log_level = PS_LOG_DEBUG;
	named_function();
	char want[192];
	snprintf(want, sizeof want, "poolshim[%d]: error: x\n", (int)getpid());
	cr_assert_str_eq(t_log_captured(), want);
	ps_log_write(PS_LOG_INFO, "explicit", "n=%d", 42);
	debug_function();
	snprintf(want, sizeof want,
		 "poolshim[%d]: error: x\npoolshim[%d]: info: n=42\npoolshim[%d]: debug: debug_function: y\n",
		 (int)getpid(), (int)getpid(), (int)getpid());
	cr_assert_str_eq(t_log_captured(), want);
}

Test(log, held_lines_wait_for_release, .init = setup_log)
{
	ps_log_hold();
	PS_LOG_WARN("first");
	PS_LOG_WARN("second");
	cr_assert_eq(t_log_total_lines(), 0, "held lines were written: [%s]", t_log_captured());
	uint32_t d = ps_log_held_digest();
	cr_assert_neq(d, 0);
	ps_log_release(false);
	char want[192];
	snprintf(want, sizeof want, "poolshim[%d]: warning: first\npoolshim[%d]: warning: second\n",
		 (int)getpid(), (int)getpid());
	cr_assert_str_eq(t_log_captured(), want);
	/* released: lines go out at once again */
	PS_LOG_WARN("third");
	cr_assert_eq(t_log_total_lines(), 3);
	cr_assert_eq(ps_log_held_digest(), 0, "nothing held after a release");
}

Test(log, held_digest_is_the_text_without_the_pid, .init = setup_log)
{
	ps_log_hold();
	cr_assert_eq(ps_log_held_digest(), 0, "nothing held yet");
	PS_LOG_WARN("POOLSHIM_X=\"1\" is bad");
	uint32_t one = ps_log_held_digest();
	ps_log_release(true);
	ps_log_hold();
	PS_LOG_WARN("POOLSHIM_X=\"1\" is bad");
	cr_assert_eq(ps_log_held_digest(), one, "same warnings, same digest");
	PS_LOG_WARN("POOLSHIM_Y=\"2\" is bad");
	cr_assert_neq(ps_log_held_digest(), one, "more warnings, another digest");
	ps_log_release(true);
	cr_assert_eq(t_log_total_lines(), 0, "dropped lines are not written: [%s]", t_log_captured());
}

static void *log_from_thread(void *arg)
{
	(void)arg;
	PS_LOG_WARN("from another thread");
	return NULL;
}

Test(log, hold_applies_to_the_holding_thread_only, .init = setup_log)
{
	pthread_t th;
	ps_log_hold();
	cr_assert_eq(pthread_create(&th, NULL, log_from_thread, NULL), 0);
	pthread_join(th, NULL);
	cr_assert_eq(t_log_count_lines("from another thread"), 1);
	ps_log_release(true);
}

Test(log, a_full_hold_writes_through, .init = setup_log)
{
	char big[400];
	memset(big, 'b', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	ps_log_hold();
	for (int i = 0; i < 20; i++)
		PS_LOG_WARN("%d %s", i, big);
	int written = t_log_total_lines();
	cr_assert_gt(written, 0, "lines past the hold buffer are written at once");
	ps_log_release(false);
	cr_assert_eq(t_log_total_lines(), 20, "every line once");
}

Test(log, long_message_is_one_truncated_line, .init = setup_log)
{
	char big[2000];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	PS_LOG_WARN("%s", big);
	const char *got = t_log_captured();
	size_t len = strlen(got);
	cr_assert_eq(t_log_total_lines(), 1);
	cr_assert_leq(len, 512, "a line fits the 512-byte buffer (got %zu)", len);
	cr_assert_eq(got[len - 1], '\n');
	cr_assert_eq(got[len - 2], 'a');
}

Test(log, errno_preserved, .init = setup_log)
{
	errno = 4321;
	PS_LOG_WARN("message");
	cr_assert_eq(errno, 4321);
	/* even when the write itself fails */
	ps_log_set_fd(-1);
	errno = 1234;
	PS_LOG_ERROR("lost");
	cr_assert_eq(errno, 1234);
	errno = 99;
	PS_LOG_DEBUG("filtered");
	cr_assert_eq(errno, 99);
}

Test(log, open_file_moves_above_floor)
{
	char path[] = "/tmp/poolshim-unit-log-XXXXXX";
	int tmp = mkstemp(path);
	cr_assert_geq(tmp, 0);
	close(tmp);
	cr_assert_eq(ps_log_open_file(path, 100), 0);
	int fd = ps_log_fd();
	cr_assert_geq(fd, 100);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	PS_LOG_WARN("to the file");
	char buf[256] = { 0 };
	int rfd = open(path, O_RDONLY);
	cr_assert_gt(read(rfd, buf, sizeof buf - 1), 0);
	close(rfd);
	unlink(path);
	cr_assert_not_null(strstr(buf, ": to the file\n"), "file has [%s]", buf);
	/* a path that cannot be opened leaves the sink alone */
	errno = 0;
	cr_assert_eq(ps_log_open_file("/nonexistent-dir/x.log", 100), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(ps_log_fd(), fd);
	ps_log_set_fd(2);
}

static int writes;
static ssize_t one_write(int fd, const void *buf, size_t len)
{
	(void)fd;
	(void)buf;
	writes++;
	return (ssize_t)len;
}

Test(log, one_write_per_line)
{
	ps_log_level = PS_LOG_WARN;
	ps_sys.write = one_write;
	writes = 0;
	PS_LOG_WARN("a %d %s", 1, "b");
	PS_LOG_WARN("c");
	ps_sys_reset();
	cr_assert_eq(writes, 2);
}
