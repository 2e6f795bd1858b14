/* config.c: every POOLSHIM_* variable through a fake environment.  A bad value
 * gives exactly one warning (counted from the return value and from the log
 * written to a pipe) and turns off what it governs (fail closed); a
 * well-formed number out of range is clamped. */
#include "config.h"
#include "helpers.h"
#include "log.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

static struct ps_config cfg;

static void setup(void)
{
	ps_log_level = PS_LOG_WARN;
	t_env_clear();
}

TestSuite(config, .init = setup);

static int parse(void)
{
	t_log_capture_start();
	return ps_config_parse(&cfg, t_env_lookup);
}

/* The variable's warning: its name followed by =" starts the message. */
static int lines_for(const char *name)
{
	char needle[64];
	snprintf(needle, sizeof needle, "%s=\"", name);
	return t_log_count_lines(needle);
}

static void assert_one_warning(const char *name, const char *value, int ret)
{
	cr_assert_eq(ret, 1, "%s=\"%s\": %d warnings returned", name, value, ret);
	cr_assert_eq(lines_for(name), 1, "%s=\"%s\": log was [%s]", name, value, t_log_captured());
	cr_assert_eq(t_log_total_lines(), 1, "%s=\"%s\": log was [%s]", name, value, t_log_captured());
}

static void assert_no_warning(const char *name, const char *value, int ret)
{
	cr_assert_eq(ret, 0, "%s=\"%s\": %d warnings", name, value, ret);
	cr_assert_eq(t_log_total_lines(), 0, "%s=\"%s\": log was [%s]", name, value, t_log_captured());
}

static bool allows4(const char *ip, uint16_t port)
{
	uint8_t a[4];
	cr_assert_eq(inet_pton(AF_INET, ip, a), 1);
	return ps_config_allows(&cfg, AF_INET, a, port);
}

static bool allows6(const char *ip, uint16_t port)
{
	uint8_t a[16];
	cr_assert_eq(inet_pton(AF_INET6, ip, a), 1);
	return ps_config_allows(&cfg, AF_INET6, a, port);
}

static void assert_defaults_except(const char *which)
{
	if (strcmp(which, "disable"))
		cr_assert_eq(cfg.disable, false);
	if (strcmp(which, "per_host"))
		cr_assert_eq(cfg.max_idle_per_host, 4);
	if (strcmp(which, "max_idle"))
		cr_assert_eq(cfg.max_idle, 128);
	if (strcmp(which, "idle"))
		cr_assert_eq(cfg.idle_timeout_ns, 15 * 1000000000ull);
	if (strcmp(which, "lifetime"))
		cr_assert_eq(cfg.max_lifetime_ns, 0);
	if (strcmp(which, "reuse"))
		cr_assert_eq(cfg.max_reuse, 0);
	if (strcmp(which, "ports"))
		cr_assert_eq(cfg.ports_all, true);
	if (strcmp(which, "exclude"))
		cr_assert_eq(cfg.n_excludes, 0);
	if (strcmp(which, "unix"))
		cr_assert_eq(cfg.unix_sockets, false);
	if (strcmp(which, "log"))
		cr_assert_eq(cfg.log_level, PS_LOG_WARN);
	if (strcmp(which, "stats"))
		cr_assert_eq(cfg.stats, PS_STATS_OFF);
	if (strcmp(which, "protocols"))
		cr_assert_eq(cfg.protocols, PS_PROTOS_DEFAULT);
}

/* Fail closed: the bad value disabled pooling, everything else is default. */
static void assert_disabled_otherwise_defaults(const char *var, const char *val)
{
	cr_assert_eq(cfg.disable, true, "%s=\"%s\" must disable pooling", var, val);
	assert_defaults_except("disable");
}

Test(config, defaults_when_nothing_set)
{
	assert_no_warning("(none)", "", parse());
	assert_defaults_except("");
	cr_assert_str_eq(cfg.log_file, "");
	cr_assert_eq(ps_log_level, PS_LOG_WARN);
	cr_assert(allows4("127.0.0.1", 80));
	cr_assert(allows6("::1", 1));
	cr_assert(allows4("10.0.0.1", 65535));
}

Test(config, disable_valid_values)
{
	t_env_set(PS_ENV_DISABLE, "1");
	assert_no_warning(PS_ENV_DISABLE, "1", parse());
	cr_assert_eq(cfg.disable, true);
	assert_defaults_except("disable");
	t_env_set(PS_ENV_DISABLE, "0");
	assert_no_warning(PS_ENV_DISABLE, "0", parse());
	cr_assert_eq(cfg.disable, false);
}

Test(config, unix_valid_values)
{
	t_env_set(PS_ENV_UNIX, "1");
	assert_no_warning(PS_ENV_UNIX, "1", parse());
	cr_assert_eq(cfg.unix_sockets, true);
	assert_defaults_except("unix");
	t_env_set(PS_ENV_UNIX, "0");
	assert_no_warning(PS_ENV_UNIX, "0", parse());
	cr_assert_eq(cfg.unix_sockets, false);
}

static const char *const bad_booleans[] = { "yes", "no", "true", "false", "", "2", " 1", "1 ", "01", "-1" };

/* Changed with fail-closed parsing: a bad POOLSHIM_DISABLE used to keep
 * pooling on; now only 0 turns it on. */
Test(config, bad_disable_warns_once_and_disables_pooling)
{
	for (size_t i = 0; i < sizeof bad_booleans / sizeof bad_booleans[0]; i++) {
		t_env_clear();
		t_env_set(PS_ENV_DISABLE, bad_booleans[i]);
		assert_one_warning(PS_ENV_DISABLE, bad_booleans[i], parse());
		assert_disabled_otherwise_defaults(PS_ENV_DISABLE, bad_booleans[i]);
	}
}

Test(config, bad_unix_warns_once_and_leaves_unix_off)
{
	for (size_t i = 0; i < sizeof bad_booleans / sizeof bad_booleans[0]; i++) {
		t_env_clear();
		t_env_set(PS_ENV_UNIX, bad_booleans[i]);
		assert_one_warning(PS_ENV_UNIX, bad_booleans[i], parse());
		cr_assert_eq(cfg.unix_sockets, false);
		assert_defaults_except("");
	}
}

Test(config, counts_valid_values)
{
	static const struct {
		const char *var, *val;
		unsigned want;
	} ok[] = {
		{ PS_ENV_MAX_IDLE_PER_HOST, "1", 1 },
		{ PS_ENV_MAX_IDLE_PER_HOST, "8", 8 },
		{ PS_ENV_MAX_IDLE_PER_HOST, "1024", 1024 },
		{ PS_ENV_MAX_IDLE, "1", 1 },
		{ PS_ENV_MAX_IDLE, "256", 256 },
		{ PS_ENV_MAX_IDLE, "65536", 65536 },
		{ PS_ENV_MAX_REUSE, "0", 0 },
		{ PS_ENV_MAX_REUSE, "100", 100 },
		{ PS_ENV_MAX_REUSE, "4294967295", 4294967295u },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		t_env_clear();
		t_env_set(ok[i].var, ok[i].val);
		assert_no_warning(ok[i].var, ok[i].val, parse());
		unsigned got = strcmp(ok[i].var, PS_ENV_MAX_IDLE_PER_HOST) == 0 ? cfg.max_idle_per_host
			       : strcmp(ok[i].var, PS_ENV_MAX_IDLE) == 0	  ? cfg.max_idle
									  : cfg.max_reuse;
		cr_assert_eq(got, ok[i].want, "%s=%s gave %u", ok[i].var, ok[i].val, got);
	}
}

/* Not numbers.  ("99999999999999999999" used to be here: it is a number, too
 * large, and is now clamped like any other out-of-range value.) */
static const char *const bad_numbers[] = {
	"abc", "", "-1", "12abc", " 5", "5 ", "+5", "1e3", "0x10", "4.5",
};

/* Changed with fail-closed parsing: a cap that cannot be read used to fall
 * back to its default; now it disables pooling. */
static void check_bad_count(const char *var)
{
	for (size_t i = 0; i < sizeof bad_numbers / sizeof bad_numbers[0]; i++) {
		t_env_clear();
		t_env_set(var, bad_numbers[i]);
		assert_one_warning(var, bad_numbers[i], parse());
		assert_disabled_otherwise_defaults(var, bad_numbers[i]);
	}
}

Test(config, bad_max_idle_per_host_values) { check_bad_count(PS_ENV_MAX_IDLE_PER_HOST); }
Test(config, bad_max_idle_values) { check_bad_count(PS_ENV_MAX_IDLE); }
Test(config, bad_max_reuse_values) { check_bad_count(PS_ENV_MAX_REUSE); }

/* Not numbers of seconds.  ("99999999999999999999" and "31536001" used to be
 * here: they are numbers above the one-year maximum, now clamped.) */
static const char *const bad_seconds[] = {
	"abc", "", "-1", "12abc", " 5", "5 ", "+5", "1e3",
	"1.2345", "1.", ".5", "1.5.0", "1,5", "0.-5", "9999999999999999999999999999999999x",
};

Test(config, bad_idle_timeout_values)
{
	for (size_t i = 0; i < sizeof bad_seconds / sizeof bad_seconds[0]; i++) {
		t_env_clear();
		t_env_set(PS_ENV_IDLE_TIMEOUT, bad_seconds[i]);
		assert_one_warning(PS_ENV_IDLE_TIMEOUT, bad_seconds[i], parse());
		assert_disabled_otherwise_defaults(PS_ENV_IDLE_TIMEOUT, bad_seconds[i]);
	}
}

Test(config, bad_max_lifetime_values)
{
	for (size_t i = 0; i < sizeof bad_seconds / sizeof bad_seconds[0]; i++) {
		t_env_clear();
		t_env_set(PS_ENV_MAX_LIFETIME, bad_seconds[i]);
		assert_one_warning(PS_ENV_MAX_LIFETIME, bad_seconds[i], parse());
		assert_disabled_otherwise_defaults(PS_ENV_MAX_LIFETIME, bad_seconds[i]);
	}
}

Test(config, huge_seconds_are_clamped_to_one_year)
{
	static const char *const vars[] = { PS_ENV_IDLE_TIMEOUT, PS_ENV_MAX_LIFETIME };
	static const char *const huge[] = { "99999999", "31536001", "31536000.001",
					    "99999999999999999999", "99999999999999999999999999999999999999.5" };
	for (size_t v = 0; v < 2; v++) {
		for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
			t_env_clear();
			t_env_set(vars[v], huge[i]);
			assert_one_warning(vars[v], huge[i], parse());
			uint64_t got = v == 0 ? cfg.idle_timeout_ns : cfg.max_lifetime_ns;
			cr_assert_eq(got, 31536000ull * 1000000000ull, "%s=%s gave %llu", vars[v], huge[i],
				     (unsigned long long)got);
			cr_assert_eq(cfg.disable, false, "a clamped value keeps pooling on");
		}
	}
}

Test(config, out_of_range_counts_are_clamped_with_one_warning)
{
	t_env_set(PS_ENV_MAX_IDLE_PER_HOST, "0");
	assert_one_warning(PS_ENV_MAX_IDLE_PER_HOST, "0", parse());
	cr_assert_eq(cfg.max_idle_per_host, 1);
	t_env_set(PS_ENV_MAX_IDLE_PER_HOST, "5000");
	assert_one_warning(PS_ENV_MAX_IDLE_PER_HOST, "5000", parse());
	cr_assert_eq(cfg.max_idle_per_host, 1024);
	t_env_clear();
	t_env_set(PS_ENV_MAX_IDLE, "0");
	assert_one_warning(PS_ENV_MAX_IDLE, "0", parse());
	cr_assert_eq(cfg.max_idle, 1);
	t_env_set(PS_ENV_MAX_IDLE, "65537");
	assert_one_warning(PS_ENV_MAX_IDLE, "65537", parse());
	cr_assert_eq(cfg.max_idle, 65536);
	t_env_clear();
	t_env_set(PS_ENV_MAX_REUSE, "4294967296");
	assert_one_warning(PS_ENV_MAX_REUSE, "4294967296", parse());
	cr_assert_eq(cfg.max_reuse, 4294967295u);
	/* more digits than 64 bits hold: still a number, still clamped */
	t_env_clear();
	t_env_set(PS_ENV_MAX_IDLE_PER_HOST, "99999999999999999999");
	assert_one_warning(PS_ENV_MAX_IDLE_PER_HOST, "99999999999999999999", parse());
	cr_assert_eq(cfg.max_idle_per_host, 1024);
	cr_assert_eq(cfg.disable, false);
}

Test(config, idle_timeout_values)
{
	static const struct {
		const char *val;
		uint64_t ms;
	} ok[] = { { "15", 15000 }, { "0.5", 500 }, { "1.250", 1250 }, { "1.25", 1250 },
		   { "2.5", 2500 }, { "0.001", 1 }, { "31536000", 31536000000ull } };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		t_env_set(PS_ENV_IDLE_TIMEOUT, ok[i].val);
		assert_no_warning(PS_ENV_IDLE_TIMEOUT, ok[i].val, parse());
		cr_assert_eq(cfg.idle_timeout_ns, ok[i].ms * 1000000ull, "%s", ok[i].val);
		assert_defaults_except("idle");
	}
	/* zero is below the minimum: clamped to 1 ms with one warning */
	t_env_set(PS_ENV_IDLE_TIMEOUT, "0");
	assert_one_warning(PS_ENV_IDLE_TIMEOUT, "0", parse());
	cr_assert_eq(cfg.idle_timeout_ns, 1000000ull);
}

Test(config, max_lifetime_values)
{
	t_env_set(PS_ENV_MAX_LIFETIME, "30");
	assert_no_warning(PS_ENV_MAX_LIFETIME, "30", parse());
	cr_assert_eq(cfg.max_lifetime_ns, 30 * 1000000000ull);
	assert_defaults_except("lifetime");
	t_env_set(PS_ENV_MAX_LIFETIME, "0");
	assert_no_warning(PS_ENV_MAX_LIFETIME, "0", parse());
	cr_assert_eq(cfg.max_lifetime_ns, 0, "0 means no limit");
	t_env_set(PS_ENV_MAX_LIFETIME, "0.5");
	assert_no_warning(PS_ENV_MAX_LIFETIME, "0.5", parse());
	cr_assert_eq(cfg.max_lifetime_ns, 500000000ull);
}

Test(config, ports_list_and_range)
{
	t_env_set(PS_ENV_PORTS, "80,8000-8100");
	assert_no_warning(PS_ENV_PORTS, "80,8000-8100", parse());
	cr_assert_eq(cfg.ports_all, false);
	assert_defaults_except("ports");
	cr_assert_not(allows4("127.0.0.1", 79));
	cr_assert(allows4("127.0.0.1", 80));
	cr_assert_not(allows4("127.0.0.1", 81));
	cr_assert_not(allows4("127.0.0.1", 7999));
	cr_assert(allows4("127.0.0.1", 8000));
	cr_assert(allows4("127.0.0.1", 8050));
	cr_assert(allows4("127.0.0.1", 8100));
	cr_assert_not(allows4("127.0.0.1", 8101));
	cr_assert_not(allows4("127.0.0.1", 443));
	cr_assert(allows6("::1", 8000), "the port filter applies to IPv6 too");
	cr_assert_not(allows6("::1", 443));
	/* the bitmap holds exactly 1 + 101 ports */
	int n = 0;
	for (unsigned p = 0; p < 65536; p++)
		n += (cfg.ports[p / 8] >> (p % 8)) & 1;
	cr_assert_eq(n, 102);
	/* the extremes */
	t_env_set(PS_ENV_PORTS, "1,65535");
	assert_no_warning(PS_ENV_PORTS, "1,65535", parse());
	cr_assert(allows4("127.0.0.1", 1));
	cr_assert(allows4("127.0.0.1", 65535));
	cr_assert_not(allows4("127.0.0.1", 2));
}

/* Changed with fail-closed parsing: a bad list used to pool every port. */
Test(config, bad_ports_warn_once_and_pool_nothing)
{
	static const char *const bad[] = { "90-80", "0", "70000", "", "80,", ",80", "80-", "-80",
					   "a", "80 ,81", "80, 8080", "80,8080 ", "80-90-100", "65536",
					   "0-10", "1-65536", "80,garbage", "8000-8100,x" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t_env_set(PS_ENV_PORTS, bad[i]);
		assert_one_warning(PS_ENV_PORTS, bad[i], parse());
		cr_assert_eq(cfg.ports_all, false, "%s", bad[i]);
		cr_assert_eq(cfg.disable, false, "the filter, not the switch, keeps everything out");
		/* not even the ports named before the bad entry */
		for (unsigned p = 1; p < 65536; p += 1)
			cr_assert_not(allows4("127.0.0.1", (uint16_t)p), "%s: port %u allowed", bad[i], p);
		cr_assert_not(allows6("::1", 80));
	}
}

static void exclude(const char *v)
{
	t_env_set(PS_ENV_EXCLUDE, v);
	assert_no_warning(PS_ENV_EXCLUDE, v, parse());
	cr_assert_eq(cfg.disable, false);
}

Test(config, exclude_ipv4_cidr_covers_mapped_ipv6)
{
	exclude("10.0.0.0/8");
	cr_assert_eq(cfg.n_excludes, 1);
	cr_assert_eq(cfg.excludes[0].family, AF_INET);
	cr_assert_eq(cfg.excludes[0].prefix, 8);
	cr_assert_eq(cfg.excludes[0].port, 0);
	cr_assert_not(allows4("10.1.2.3", 80));
	cr_assert_not(allows4("10.255.255.255", 1));
	cr_assert(allows4("11.0.0.1", 80));
	cr_assert(allows4("9.255.255.255", 80));
	cr_assert_not(allows6("::ffff:10.1.2.3", 80), "an IPv4 entry covers the IPv4-mapped address");
	cr_assert(allows6("::ffff:11.0.0.1", 80));
	cr_assert(allows6("::a01:203", 80), "an IPv4-compatible (not mapped) address is not covered");
}

Test(config, exclude_unaligned_prefixes)
{
	exclude("192.168.0.0/23,2001:db8::/32");
	cr_assert_eq(cfg.n_excludes, 2);
	cr_assert_not(allows4("192.168.1.255", 80));
	cr_assert(allows4("192.168.2.0", 80));
	cr_assert_not(allows6("2001:db8:1::1", 80));
	cr_assert(allows6("2001:db9::1", 80));
}

Test(config, exclude_host_and_port)
{
	exclude("127.0.0.1:8080");
	cr_assert_eq(cfg.n_excludes, 1);
	cr_assert_eq(cfg.excludes[0].port, 8080);
	cr_assert_eq(cfg.excludes[0].prefix, 32);
	cr_assert_not(allows4("127.0.0.1", 8080));
	cr_assert(allows4("127.0.0.1", 8081));
	cr_assert(allows4("127.0.0.2", 8080));
	cr_assert_not(allows6("::ffff:127.0.0.1", 8080));
	cr_assert(allows6("::ffff:127.0.0.1", 8081));
}

Test(config, exclude_port_only)
{
	exclude(":6379");
	cr_assert_eq(cfg.n_excludes, 1);
	cr_assert_eq(cfg.excludes[0].family, 0);
	cr_assert_eq(cfg.excludes[0].port, 6379);
	cr_assert_not(allows4("127.0.0.1", 6379));
	cr_assert_not(allows4("10.9.8.7", 6379));
	cr_assert_not(allows6("::1", 6379));
	cr_assert(allows4("127.0.0.1", 6380));
}

Test(config, exclude_bracketed_ipv6_with_port)
{
	exclude("[::1]:443");
	cr_assert_eq(cfg.n_excludes, 1);
	cr_assert_eq(cfg.excludes[0].family, AF_INET6);
	cr_assert_eq(cfg.excludes[0].port, 443);
	cr_assert_not(allows6("::1", 443));
	cr_assert(allows6("::1", 444));
	cr_assert(allows6("::2", 443));
	cr_assert(allows4("127.0.0.1", 443));
}

Test(config, exclude_bare_ipv6)
{
	/* Regression: an entry starting with ':' used to be taken for ":port",
	 * so a bare IPv6 address beginning with "::" was rejected (and pooling
	 * disabled altogether). */
	exclude("::1");
	cr_assert_eq(cfg.n_excludes, 1);
	exclude("::ffff:10.0.0.0/104");
	cr_assert_not(allows6("::ffff:10.9.9.9", 80));
	exclude("::1");
	cr_assert_eq(cfg.excludes[0].family, AF_INET6);
	cr_assert_eq(cfg.excludes[0].prefix, 128);
	cr_assert_eq(cfg.excludes[0].port, 0);
	cr_assert_not(allows6("::1", 80));
	cr_assert_not(allows6("::1", 8080));
	cr_assert(allows6("::2", 80));
	cr_assert(allows4("127.0.0.1", 80));
}

/* "localhost" means every loopback address: 127.0.0.0/8 and ::1. */
Test(config, exclude_localhost_is_all_loopback)
{
	exclude("localhost");
	cr_assert_eq(cfg.n_excludes, 2);
	cr_assert_not(allows4("127.0.0.1", 80));
	cr_assert_not(allows4("127.0.0.1", 9999));
	cr_assert_not(allows4("127.0.0.2", 80));
	cr_assert_not(allows4("127.255.255.254", 80));
	cr_assert_not(allows6("::ffff:127.0.0.1", 80));
	cr_assert_not(allows6("::1", 80));
	cr_assert(allows4("128.0.0.1", 80));
	cr_assert(allows6("::2", 80));
}

Test(config, exclude_localhost_with_port)
{
	exclude("localhost:6379");
	cr_assert_eq(cfg.n_excludes, 2);
	cr_assert_not(allows4("127.0.0.3", 6379));
	cr_assert_not(allows6("::1", 6379));
	cr_assert(allows4("127.0.0.3", 80));
	cr_assert(allows6("::1", 80));
}

Test(config, exclude_bare_ipv6_other_forms)
{
	exclude("2001:db8::7,fe80::/10");
	cr_assert_eq(cfg.n_excludes, 2);
	cr_assert_not(allows6("2001:db8::7", 80));
	cr_assert(allows6("2001:db8::8", 80));
	cr_assert_not(allows6("fe80::1234", 80));
	cr_assert(allows6("fec0::1", 80));
}

Test(config, exclude_full_list)
{
	exclude("10.0.0.0/8,127.0.0.1:8080,:6379,[::1]:443,::1,localhost");
	cr_assert_eq(cfg.n_excludes, 7); /* localhost is two entries */
	cr_assert_not(allows4("10.0.0.1", 1));
	cr_assert_not(allows4("127.0.0.1", 1), "localhost");
	cr_assert_not(allows4("192.0.2.1", 6379));
	cr_assert_not(allows6("::1", 1));
	cr_assert(allows4("192.0.2.1", 80));
	cr_assert(allows6("::2", 443));
}

Test(config, exclude_combines_with_ports)
{
	t_env_set(PS_ENV_PORTS, "80,6379");
	exclude(":6379");
	cr_assert(allows4("127.0.0.1", 80));
	cr_assert_not(allows4("127.0.0.1", 6379));
	cr_assert_not(allows4("127.0.0.1", 81));
}

static void bad_exclude(const char *v)
{
	t_env_clear();
	t_env_set(PS_ENV_EXCLUDE, v);
	assert_one_warning(PS_ENV_EXCLUDE, v, parse());
	cr_assert_eq(cfg.disable, true, "EXCLUDE=\"%s\" must disable pooling", v);
	cr_assert_eq(cfg.n_excludes, 0, "EXCLUDE=\"%s\"", v);
}

Test(config, bad_exclude_entry_disables_pooling)
{
	bad_exclude("db.example.com");
	bad_exclude("10.0.0.0/8,db.example.com");
	bad_exclude("");
	bad_exclude("10.0.0.0/8,");
	bad_exclude("10.0.0.0/33");
	bad_exclude("::1/129");
	bad_exclude("10.0.0.0/");
	bad_exclude("10.0.0.0/x");
	bad_exclude("[::1");
	bad_exclude("[::1]x");
	bad_exclude("[::1]:");
	bad_exclude("127.0.0.1:0");
	bad_exclude("127.0.0.1:70000");
	bad_exclude(":");
	bad_exclude(":0");
	bad_exclude("10.0.0.1/8:80");
	bad_exclude("256.0.0.1");
}

Test(config, exclude_prefix_length_must_not_wrap)
{
	/* Regression: the prefix used to be cast to int before the range check
	 * ("(int)bits > e->prefix"), so 2^32+8 passed as /8 and 2^32-1 as /-1,
	 * which matched every address.  Both are out of range: bad entries. */
	bad_exclude("10.0.0.0/4294967304");
	bad_exclude("10.0.0.0/4294967295");
}

Test(config, too_many_exclude_entries_disables_pooling)
{
	static char list[1024];
	size_t off = 0;
	for (int i = 0; i < PS_MAX_EXCLUDES; i++)
		off += (size_t)snprintf(list + off, sizeof list - off, "%s:%d", i ? "," : "", 1000 + i);
	exclude(list);
	cr_assert_eq(cfg.n_excludes, PS_MAX_EXCLUDES);
	snprintf(list + off, sizeof list - off, ",:2000");
	bad_exclude(list);
}

Test(config, log_levels)
{
	static const struct {
		const char *v;
		int level;
	} ok[] = { { "off", PS_LOG_OFF }, { "error", PS_LOG_ERROR }, { "warn", PS_LOG_WARN },
		   { "info", PS_LOG_INFO }, { "debug", PS_LOG_DEBUG } };
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		t_env_set(PS_ENV_LOG, ok[i].v);
		assert_no_warning(PS_ENV_LOG, ok[i].v, parse());
		cr_assert_eq(cfg.log_level, ok[i].level, "%s", ok[i].v);
		cr_assert_eq(ps_log_level, ok[i].level, "the parse sets the live level");
	}
}

Test(config, bad_log_level_warns_once)
{
	static const char *const bad[] = { "verbose", "", "3", "warning", " warn" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ps_log_level = PS_LOG_WARN;
		t_env_set(PS_ENV_LOG, bad[i]);
		assert_one_warning(PS_ENV_LOG, bad[i], parse());
		cr_assert_eq(cfg.log_level, PS_LOG_WARN);
		cr_assert_eq(ps_log_level, PS_LOG_WARN);
	}
}

Test(config, log_off_silences_config_warnings_but_counts_them)
{
	/* The level is parsed first so that the other warnings obey it. */
	t_env_set(PS_ENV_LOG, "off");
	t_env_set(PS_ENV_MAX_IDLE, "abc");
	cr_assert_eq(parse(), 1);
	cr_assert_eq(t_log_total_lines(), 0, "log was [%s]", t_log_captured());
	cr_assert_eq(cfg.max_idle, 128);
}

Test(config, log_file_recorded)
{
	t_env_set(PS_ENV_LOG_FILE, "/tmp/poolshim.log");
	assert_no_warning(PS_ENV_LOG_FILE, "/tmp/poolshim.log", parse());
	cr_assert_str_eq(cfg.log_file, "/tmp/poolshim.log");
	t_env_set(PS_ENV_LOG_FILE, "");
	assert_no_warning(PS_ENV_LOG_FILE, "", parse());
	cr_assert_str_eq(cfg.log_file, "");
}

Test(config, stats_modes)
{
	t_env_set(PS_ENV_STATS, "1");
	assert_no_warning(PS_ENV_STATS, "1", parse());
	cr_assert_eq(cfg.stats, PS_STATS_STDERR);
	t_env_set(PS_ENV_STATS, "/tmp/x");
	assert_no_warning(PS_ENV_STATS, "/tmp/x", parse());
	cr_assert_eq(cfg.stats, PS_STATS_FILE);
	cr_assert_str_eq(cfg.stats_path, "/tmp/x");
	t_env_set(PS_ENV_STATS, "0");
	assert_no_warning(PS_ENV_STATS, "0", parse());
	cr_assert_eq(cfg.stats, PS_STATS_OFF);
	t_env_set(PS_ENV_STATS, "");
	assert_one_warning(PS_ENV_STATS, "", parse());
	cr_assert_eq(cfg.stats, PS_STATS_OFF);
	t_env_set(PS_ENV_STATS, "./stats.txt");
	assert_no_warning(PS_ENV_STATS, "./stats.txt", parse());
	cr_assert_eq(cfg.stats, PS_STATS_FILE);
	cr_assert_str_eq(cfg.stats_path, "./stats.txt");
}

/* Changed with fail-closed parsing: "yes" used to create a file named yes.
 * A path must contain a '/'. */
Test(config, stats_words_are_not_paths)
{
	static const char *const bad[] = { "yes", "true", "on", "2", "stats.txt", " 1", "1 " };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t_env_set(PS_ENV_STATS, bad[i]);
		assert_one_warning(PS_ENV_STATS, bad[i], parse());
		cr_assert_eq(cfg.stats, PS_STATS_OFF, "%s", bad[i]);
		cr_assert_str_eq(cfg.stats_path, "");
		assert_defaults_except("");
	}
}

Test(config, protocols_lists)
{
	static const struct {
		const char *val;
		unsigned mask;
	} ok[] = {
		{ "http", PS_PROTO_BIT(PS_PROTO_HTTP) },
		{ "redis", PS_PROTO_BIT(PS_PROTO_REDIS) },
		{ "memcached", PS_PROTO_BIT(PS_PROTO_MEMCACHED) },
		{ "http,redis,memcached", PS_PROTOS_DEFAULT },
		{ "http,redis,memcached,any", PS_PROTOS_ALL },
		{ "any", PS_PROTO_BIT(PS_PROTO_OTHER) },
		{ "redis,http", PS_PROTO_BIT(PS_PROTO_HTTP) | PS_PROTO_BIT(PS_PROTO_REDIS) },
		{ "http,http", PS_PROTO_BIT(PS_PROTO_HTTP) },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		t_env_set(PS_ENV_PROTOCOLS, ok[i].val);
		assert_no_warning(PS_ENV_PROTOCOLS, ok[i].val, parse());
		cr_assert_eq(cfg.protocols, ok[i].mask, "%s gave %#x", ok[i].val, cfg.protocols);
		assert_defaults_except("protocols");
		cr_assert(allows4("127.0.0.1", 80));
	}
	cr_assert_not(ps_proto_enabled(PS_PROTOS_DEFAULT, PS_PROTO_OTHER), "any is not a default");
	cr_assert_not(ps_proto_enabled(PS_PROTOS_ALL, PS_PROTO_TLS));
	cr_assert_not(ps_proto_enabled(PS_PROTOS_ALL, PS_PROTO_NONE));
}

Test(config, bad_protocols_warn_once_and_pool_nothing)
{
	static const char *const bad[] = { "", "tls", "HTTP", "http,", ",http", "http,,redis",
					   "http, redis", " http", "http ", "all", "http,ftp" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		t_env_set(PS_ENV_PROTOCOLS, bad[i]);
		assert_one_warning(PS_ENV_PROTOCOLS, bad[i], parse());
		cr_assert_eq(cfg.protocols, 0, "%s", bad[i]);
		cr_assert_not(allows4("127.0.0.1", 80), "%s: nothing may be pooled", bad[i]);
		cr_assert_not(allows6("::1", 6379));
		assert_defaults_except("protocols");
	}
}

Test(config, warnings_add_up_one_per_bad_variable)
{
	t_env_set(PS_ENV_DISABLE, "yes");
	t_env_set(PS_ENV_MAX_IDLE_PER_HOST, "0");
	t_env_set(PS_ENV_MAX_IDLE, "abc");
	t_env_set(PS_ENV_IDLE_TIMEOUT, "1.2345");
	t_env_set(PS_ENV_PORTS, "90-80");
	t_env_set(PS_ENV_PROTOCOLS, "ftp");
	t_env_set(PS_ENV_STATS, "yes");
	t_env_set(PS_ENV_MAX_REUSE, "7"); /* good */
	cr_assert_eq(parse(), 7);
	cr_assert_eq(t_log_total_lines(), 7, "log was [%s]", t_log_captured());
	cr_assert_eq(lines_for(PS_ENV_PROTOCOLS), 1);
	cr_assert_eq(lines_for(PS_ENV_STATS), 1);
	cr_assert_eq(cfg.disable, true);
	cr_assert_eq(lines_for(PS_ENV_DISABLE), 1);
	cr_assert_eq(lines_for(PS_ENV_MAX_IDLE_PER_HOST), 1);
	cr_assert_eq(lines_for(PS_ENV_MAX_IDLE), 1);
	cr_assert_eq(lines_for(PS_ENV_IDLE_TIMEOUT), 1);
	cr_assert_eq(lines_for(PS_ENV_PORTS), 1);
	cr_assert_eq(cfg.max_reuse, 7);
	cr_assert_eq(cfg.max_idle_per_host, 1);
	/* every line is a warning-level poolshim line */
	const char *log = t_log_captured();
	cr_assert(strncmp(log, "poolshim[", 9) == 0, "%s", log);
	cr_assert_not_null(strstr(log, "]: warning: "));
}

Test(config, parse_resets_previous_values)
{
	t_env_set(PS_ENV_MAX_IDLE, "7");
	t_env_set(PS_ENV_EXCLUDE, ":6379");
	t_env_set(PS_ENV_PORTS, "80");
	t_env_set(PS_ENV_PROTOCOLS, "redis");
	cr_assert_eq(parse(), 0);
	t_env_clear();
	assert_no_warning("(none)", "", parse());
	assert_defaults_except("");
}
