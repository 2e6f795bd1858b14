/* The exit summary (stats.c): its first line names the main reason for new
 * connections in plain words, for each reason the counters can tell; the
 * detail lines name every reason that counted, without internal words.
 * Each vector is what a real run of that kind leaves in the counters. */
#include "stats.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

static uint64_t v[PS_ST_COUNT];
static struct ps_summary_ctx ctx;
static char line[1024];

static void clear(void)
{
	memset(v, 0, sizeof v);
	ctx.filters_set = false;
	ctx.shared = false;
}

TestSuite(summary, .init = clear);

/* connects, of which `reused` came from the pool and the rest were new;
 * `closed` of them were closed by the program, `kept` of those pooled */
static void run(uint64_t connects, uint64_t reused, uint64_t closed, uint64_t kept)
{
	v[PS_ST_CONNECTS] = connects;
	v[PS_ST_HITS] = reused;
	v[PS_ST_MISSES] = connects - reused;
	v[PS_ST_CHECKINS] = kept;
	v[PS_ST_REFUSED] = closed - kept;
}

static const char *headline(void)
{
	int n = ps_summary_headline(line, sizeof line, v, &ctx);
	cr_assert_eq(n, (int)strlen(line));
	cr_assert_null(strchr(line, '\n'));
	return line;
}

#define assert_headline(want) cr_assert_str_eq(headline(), want)

Test(summary, nothing_for_a_process_without_connects)
{
	char buf[256] = "x";
	assert_headline("");
	cr_assert_eq(ps_summary_format(buf, sizeof buf, "P: ", v, &ctx), 0);
	cr_assert_str_eq(buf, "");
}

Test(summary, one_connect_has_nothing_to_reuse)
{
	run(1, 0, 1, 1);
	assert_headline("1 connect: nothing to reuse in one process; see --shared");
	ctx.shared = true; /* already sharing: nothing to point to */
	assert_headline("1 connect: nothing to reuse in one process");
}

Test(summary, all_but_the_first_reused)
{
	run(100, 99, 100, 100);
	assert_headline("100 connects, 99 reused from the pool");
}

Test(summary, threads_each_with_a_connection_count_as_reused)
{
	/* 16 threads: 16 connections open at once, then reused */
	run(320000, 319984, 320000, 320000);
	assert_headline("320000 connects, 319984 reused from the pool");
}

Test(summary, connection_close_or_server_close)
{
	/* urllib: every request says Connection: close */
	run(200, 0, 200, 0);
	v[PS_ST_REFUSED_PEER] = 200;
	assert_headline("200 connects, 0 reused: the server closed every connection, "
			"or every request asked it to (Connection: close)");
}

/* What the protocol tracker tells at close, one main reason each. */
static void only(enum ps_stat why, uint64_t n)
{
	run(n, 0, n, 0);
	v[why] = n;
}

Test(summary, every_request_asked_the_server_to_close)
{
	/* urllib: every request says Connection: close */
	only(PS_ST_REFUSED_CLIENT_CLOSE, 200);
	assert_headline("200 connects, 0 reused: every request asked the server to close (Connection: close)");
}

Test(summary, the_server_closes_after_every_answer)
{
	/* Python's http.server (HTTP/1.0), nginx with keepalive_timeout 0 */
	only(PS_ST_REFUSED_SERVER_CLOSE, 300);
	assert_headline("300 connects, 0 reused: the server closes after every answer (Connection: close, "
			"HTTP/1.0, or a body that ends with the connection)");
}

Test(summary, state_bound_to_the_connection)
{
	only(PS_ST_REFUSED_SESSION, 20);
	assert_headline("20 connects, 0 reused: every connection carried state of its own (Redis SELECT, "
			"AUTH, MULTI, SUBSCRIBE, an HTTP Upgrade, ...), which must not reach the next user");
}

Test(summary, a_protocol_poolshim_does_not_pool)
{
	only(PS_ST_REFUSED_PROTOCOL, 20);
	assert_headline("20 connects, 0 reused: the protocol is not one poolshim pools (HTTP/1.x, Redis, "
			"memcached; POOLSHIM_PROTOCOLS=...,any adds others), or its messages could not be followed");
}

Test(summary, closed_in_the_middle_of_an_answer)
{
	only(PS_ST_REFUSED_INCOMPLETE, 30);
	assert_headline("30 connects, 0 reused: the program closed every connection in the middle of an answer");
}

Test(summary, closed_before_a_complete_exchange)
{
	only(PS_ST_REFUSED_NO_EXCHANGE, 50);
	assert_headline("50 connects, 0 reused: the program closed every connection before a complete "
			"request and answer");
}

Test(summary, sendfile_or_splice)
{
	only(PS_ST_REFUSED_UNSEEN, 10);
	assert_headline("10 connects, 0 reused: the program sent with sendfile or splice, which poolshim "
			"cannot follow");
}

Test(summary, a_server_in_the_same_process)
{
	only(PS_ST_REFUSED_SAME_PROCESS, 10);
	assert_headline("10 connects, 0 reused: the server runs in this same process, and would wait for "
			"a close it never sees");
}

Test(summary, closed_after_a_write)
{
	run(50, 0, 50, 0);
	v[PS_ST_REFUSED_WRITE] = 50;
	assert_headline("50 connects, 0 reused: the program closed every connection right after a write, "
			"before reading the reply");
}

Test(summary, reply_not_read_to_its_end_and_the_destination_then_unsafe)
{
	/* the first close leaves bytes unread and marks the destination unsafe */
	run(30, 0, 30, 0);
	v[PS_ST_REFUSED_PENDING] = 1;
	v[PS_ST_REFUSED_FILTER] = 29;
	assert_headline("30 connects, 0 reused: the program closed every connection with part of the "
			"reply unread");
}

Test(summary, shared_descriptor)
{
	run(10, 0, 10, 0);
	v[PS_ST_REFUSED_SHARED] = 10;
	assert_headline("10 connects, 0 reused: every connection was shared with another descriptor or "
			"process (dup, fork, fdopen) when it was closed");
}

Test(summary, server_speaks_first)
{
	run(20, 0, 20, 0);
	v[PS_ST_REFUSED_SERVER_FIRST] = 1;
	v[PS_ST_REFUSED_FILTER] = 19; /* the destination is unsafe from then on */
	assert_headline("20 connects, 0 reused: the server speaks first (SMTP, FTP, SSH, ...); "
			"such connections are never pooled");
}

Test(summary, tls)
{
	run(20, 0, 20, 0);
	v[PS_ST_REFUSED_TLS] = 1;
	v[PS_ST_REFUSED_FILTER] = 19;
	assert_headline("20 connects, 0 reused: the connections use TLS, which cannot be pooled");
}

Test(summary, connection_bound_authentication)
{
	run(8, 0, 8, 0);
	v[PS_ST_REFUSED_AUTH] = 8;
	assert_headline("8 connects, 0 reused: the connections carry NTLM or Negotiate authentication, "
			"which belongs to the connection");
}

Test(summary, left_out_by_ports_or_exclude)
{
	ctx.filters_set = true;
	run(100, 0, 100, 0);
	v[PS_ST_REFUSED_FILTER] = 100;
	assert_headline("100 connects, 0 reused: POOLSHIM_PORTS or POOLSHIM_EXCLUDE leaves the "
			"destination out");
}

Test(summary, with_filters_set_tls_stays_tls)
{
	ctx.filters_set = true;
	run(20, 0, 20, 0);
	v[PS_ST_REFUSED_TLS] = 20;
	assert_headline("20 connects, 0 reused: the connections use TLS, which cannot be pooled");
}

Test(summary, unsafe_destination)
{
	/* unsolicited bytes on an idle connection marked the destination */
	run(100, 1, 100, 2);
	v[PS_ST_STALE] = 1;
	v[PS_ST_REFUSED_FILTER] = 98;
	assert_headline("100 connects, 1 reused: the destination was found unsafe to pool earlier in "
			"this process");
}

Test(summary, idle_timeout)
{
	/* five requests 300 ms apart, POOLSHIM_IDLE_TIMEOUT=0.1 */
	run(5, 0, 5, 5);
	v[PS_ST_REAPED] = 4;
	assert_headline("5 connects, 0 reused: every idle connection expired before the next connect "
			"(POOLSHIM_IDLE_TIMEOUT, or a lifetime or reuse limit)");
}

Test(summary, stale_at_checkout)
{
	run(100, 90, 100, 100);
	v[PS_ST_STALE] = 9;
	assert_headline("100 connects, 90 reused: the server had closed every idle connection by the "
			"next connect (its keep-alive timeout is shorter than POOLSHIM_IDLE_TIMEOUT)");
}

Test(summary, a_minor_reason_is_counted_not_generalised)
{
	run(100000, 99990, 100000, 100000);
	v[PS_ST_STALE] = 3;
	assert_headline("100000 connects, 99990 reused; main reason for the other 10: "
			"3 closed by the server while idle");
}

Test(summary, pool_full)
{
	run(40, 20, 40, 40);
	v[PS_ST_EVICTED] = 19;
	assert_headline("40 connects, 20 reused: the pool was full (POOLSHIM_MAX_IDLE_PER_HOST, "
			"POOLSHIM_MAX_IDLE)");
}

Test(summary, lifetime_or_reuse_limit)
{
	/* POOLSHIM_MAX_REUSE=4: every fifth close is not kept */
	run(50, 40, 50, 40);
	v[PS_ST_REFUSED_CAPS] = 10;
	assert_headline("50 connects, 40 reused: every connection reached POOLSHIM_MAX_LIFETIME or "
			"POOLSHIM_MAX_REUSE");
}

Test(summary, shut_down_or_failed)
{
	run(12, 0, 12, 0);
	v[PS_ST_REFUSED_STATE] = 12;
	assert_headline("12 connects, 0 reused: every connection was shut down, failed, was bound to a "
			"local port, or had a socket option poolshim cannot carry over");
}

Test(summary, closed_behind_the_shims_back)
{
	run(10, 0, 0, 0);
	v[PS_ST_IDENTITY] = 9;
	assert_headline("10 connects, 0 reused: the program closed its connections behind poolshim's back "
			"(a raw close system call, close_range)");
}

Test(summary, failed_connects)
{
	run(10, 0, 0, 0);
	v[PS_ST_MISSES] = 0; /* ECONNREFUSED every time */
	assert_headline("10 connects, 0 reused: every connect failed (refused or unreachable)");
}

Test(summary, connections_open_at_once)
{
	run(8, 0, 0, 0);
	assert_headline("8 connects, 0 reused: the connections were open at the same time, "
			"or went to different destinations");
}

Test(summary, ties_go_to_the_first_reason_in_the_table)
{
	run(11, 0, 10, 0);
	v[PS_ST_REFUSED_PEER] = 5;
	v[PS_ST_REFUSED_WRITE] = 5;
	assert_headline("11 connects, 0 reused; main reason for the other 11: "
			"5 closed by the server or by Connection: close");
}

/* words of the code, not of the user: the counters' key names, and what the
 * first summaries said ("refused_caps (taint 0x0, last io 1)") */
static const char *const internal_words[] = { "taint", "caps", "last io", "checkin", "checkout",
					      "hits", "misses", "state 0" };

static void assert_plain(const char *text)
{
	for (size_t i = 0; i < sizeof internal_words / sizeof internal_words[0]; i++)
		cr_assert_null(strstr(text, internal_words[i]), "internal word '%s' in:\n%s",
			       internal_words[i], text);
	for (int i = 0; i < PS_ST_COUNT; i++) {
		const char *name = ps_stat_name((enum ps_stat)i);
		if (strchr(name, '_'))
			cr_assert_null(strstr(text, name), "key name '%s' in:\n%s", name, text);
	}
}

Test(summary, details_name_every_reason_in_plain_words)
{
	static const enum ps_stat each[] = {
		PS_ST_REFUSED_PENDING, PS_ST_REFUSED_PEER, PS_ST_REFUSED_WRITE, PS_ST_REFUSED_SHARED,
		PS_ST_REFUSED_STATE, PS_ST_REFUSED_SERVER_FIRST, PS_ST_REFUSED_TLS, PS_ST_REFUSED_AUTH,
		PS_ST_REFUSED_CAPS, PS_ST_REFUSED_FILTER, PS_ST_STALE, PS_ST_REAPED, PS_ST_EVICTED,
		PS_ST_IDENTITY, PS_ST_STALE_RETRIES,
	};
	char buf[2048];
	for (int filters = 0; filters < 2; filters++) {
		for (size_t i = 0; i < sizeof each / sizeof each[0]; i++) {
			clear();
			ctx.filters_set = filters;
			run(3, 1, 3, 2);
			v[each[i]] = 7;
			int n = ps_summary_format(buf, sizeof buf, "poolshim[1]: ", v, &ctx);
			cr_assert_eq(n, (int)strlen(buf));
			cr_assert_not_null(strstr(buf, " 7 "), "%s=7 is not named:\n%s",
					   ps_stat_name(each[i]), buf);
			/* every line carries the prefix and ends with a newline */
			for (const char *l = buf; *l; l = strchr(l, '\n') + 1) {
				cr_assert(strncmp(l, "poolshim[1]: ", 13) == 0, "%s", buf);
				cr_assert_not_null(strchr(l, '\n'), "%s", buf);
			}
			assert_plain(buf);
		}
	}
}

Test(summary, details_after_the_headline)
{
	char buf[2048];
	run(200, 0, 200, 0);
	v[PS_ST_REFUSED_PEER] = 200;
	v[PS_ST_STALE_RETRIES] = 1;
	ps_summary_format(buf, sizeof buf, "P: ", v, &ctx);
	cr_assert_str_eq(buf,
			 "P: 200 connects, 0 reused: the server closed every connection, or every request "
			 "asked it to (Connection: close)\n"
			 "P:   200 new connections; at close 0 kept in the pool, 200 not kept\n"
			 "P:   not kept at close: 200 closed by the server or by Connection: close\n"
			 "P:   1 request sent again on a new connection: the server had closed the reused one\n");
}

Test(summary, one_connect_is_one_line)
{
	char buf[512];
	run(1, 0, 1, 1);
	ps_summary_format(buf, sizeof buf, "P: ", v, &ctx);
	cr_assert_str_eq(buf, "P: 1 connect: nothing to reuse in one process; see --shared\n");
}

Test(summary, format_truncates_like_snprintf)
{
	char full[2048], small[24];
	run(200, 0, 200, 0);
	v[PS_ST_REFUSED_PEER] = 200;
	int want = ps_summary_format(full, sizeof full, "P: ", v, &ctx);
	memset(small, 'Z', sizeof small);
	cr_assert_eq(ps_summary_format(small, 20, "P: ", v, &ctx), want);
	cr_assert_eq(small[19], '\0');
	cr_assert_eq(small[20], 'Z', "nothing written past len");
	cr_assert_arr_eq(small, full, 19);
}

Test(summary, every_refusal_and_idle_loss_has_a_label)
{
	cr_assert_str_eq(ps_stat_label(PS_ST_REFUSED_WRITE),
			 "closed right after a write, before the reply was read");
	cr_assert_str_eq(ps_stat_label(PS_ST_REFUSED_FILTER),
			 "left out by POOLSHIM_PORTS, POOLSHIM_EXCLUDE or as unsafe");
	for (int i = PS_ST_REFUSED_PENDING; i <= PS_ST_IDENTITY; i++)
		cr_assert_not_null(ps_stat_label((enum ps_stat)i), "%s has no label",
				   ps_stat_name((enum ps_stat)i));
	cr_assert_null(ps_stat_label(PS_ST_CONNECTS));
	cr_assert_null(ps_stat_label(PS_ST_HITS));
	cr_assert_null(ps_stat_label(PS_ST_STALE_RETRIES));
}
