/* Owns POOLSHIM_* parsing.  Strict: "12abc", "-1", " 5" and "" are bad
 * values, and a bad value turns off what it governs (config.h lists what
 * that means per variable); a well-formed number out of range, however
 * many digits, is clamped.  Every bad or clamped value yields exactly one
 * warning line. */
#include "config.h"
#include "clock.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ps_config ps_config;

#define MAX_SECONDS 31536000ull /* one year */

static int warn(const char *name, const char *value, const char *why)
{
	PS_LOG_WARN("%s=\"%s\" %s", name, value, why);
	return 1;
}

/* Whole decimal number; no sign, no spaces.  -1 if malformed; a number too
 * large for 64 bits gives UINT64_MAX (every caller's range ends below). */
static int parse_uint(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		uint64_t d = (uint64_t)(*s - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Seconds with up to three decimals ("15", "0.5", "1.250") -> milliseconds;
 * more than MAX_SECONDS gives MAX_SECONDS * 1000 + 1, for the caller to clamp. */
static int parse_seconds_ms(const char *s, uint64_t *ms)
{
	char whole[32];
	const char *dot = strchr(s, '.');
	size_t wlen = dot ? (size_t)(dot - s) : strlen(s);
	uint64_t w, frac = 0;
	if (wlen == 0)
		return -1;
	if (wlen >= sizeof whole) {
		/* more digits than any valid value: still a number if all digits */
		for (size_t i = 0; i < wlen; i++)
			if (s[i] < '0' || s[i] > '9')
				return -1;
		wlen = sizeof whole - 1;
	}
	memcpy(whole, s, wlen);
	whole[wlen] = '\0';
	if (parse_uint(whole, &w) < 0)
		return -1;
	if (dot) {
		size_t flen = strlen(dot + 1);
		if (flen == 0 || flen > 3 || parse_uint(dot + 1, &frac) < 0)
			return -1;
		for (size_t i = flen; i < 3; i++)
			frac *= 10;
	}
	*ms = w > MAX_SECONDS ? MAX_SECONDS * 1000 + 1 : w * 1000 + frac;
	return 0;
}

/* 0 or 1.  Anything else sets *out to `bad`, the safe side for that switch. */
static int get_bool(ps_env_lookup get, const char *name, bool bad, const char *why, bool *out)
{
	const char *v = get(name);
	if (!v)
		return 0;
	if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) {
		*out = v[0] == '1';
		return 0;
	}
	*out = bad;
	return warn(name, v, why);
}

/* A cap that cannot be read is not replaced by a default: that could keep
 * more connections, or keep them longer, than the user asked for. */
static int bad_cap(struct ps_config *c, const char *name, const char *v, const char *what)
{
	char why[96];
	c->disable = true;
	snprintf(why, sizeof why, "is not %s; pooling is disabled", what);
	return warn(name, v, why);
}

static int get_count(ps_env_lookup get, struct ps_config *c, const char *name, unsigned lo,
		     unsigned hi, unsigned *out)
{
	const char *v = get(name);
	uint64_t n;
	if (!v)
		return 0;
	if (parse_uint(v, &n) < 0)
		return bad_cap(c, name, v, "a whole number");
	if (n < lo || n > hi) {
		char why[96];
		*out = n < lo ? lo : hi;
		snprintf(why, sizeof why, "is outside %u..%u; using %u", lo, hi, *out);
		return warn(name, v, why);
	}
	*out = (unsigned)n;
	return 0;
}

static int get_seconds(ps_env_lookup get, struct ps_config *c, const char *name, uint64_t min_ms,
		       uint64_t *ns)
{
	const char *v = get(name);
	uint64_t ms;
	if (!v)
		return 0;
	if (parse_seconds_ms(v, &ms) < 0)
		return bad_cap(c, name, v, "a number of seconds (e.g. 15 or 0.5)");
	if (ms < min_ms) {
		*ns = min_ms * 1000000ull;
		return warn(name, v, "is below the minimum of 0.001; using 0.001");
	}
	if (ms > MAX_SECONDS * 1000) {
		*ns = MAX_SECONDS * 1000 * 1000000ull;
		return warn(name, v, "is above the maximum of 31536000 (one year); using 31536000");
	}
	*ns = ms * 1000000ull;
	return 0;
}

static int parse_port(const char *s, size_t len, uint16_t *port)
{
	char buf[8];
	uint64_t v;
	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (parse_uint(buf, &v) < 0 || v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* "80,443,8000-8100" */
static int parse_ports(const char *v, uint8_t *bitmap)
{
	memset(bitmap, 0, 65536 / 8);
	const char *p = v;
	if (*p == '\0')
		return -1;
	for (;;) {
		size_t len = strcspn(p, ",");
		const char *dash = memchr(p, '-', len);
		uint16_t lo, hi;
		if (dash) {
			if (parse_port(p, (size_t)(dash - p), &lo) < 0 ||
			    parse_port(dash + 1, len - (size_t)(dash - p) - 1, &hi) < 0 || hi < lo)
				return -1;
		} else {
			if (parse_port(p, len, &lo) < 0)
				return -1;
			hi = lo;
		}
		for (unsigned port = lo; port <= hi; port++)
			bitmap[port / 8] |= (uint8_t)(1u << (port % 8));
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
}

static int parse_addr(const char *s, struct ps_exclude *e)
{
	if (strcmp(s, "localhost") == 0)
		s = "127.0.0.1";
	if (inet_pton(AF_INET, s, e->addr) == 1) {
		e->family = AF_INET;
		e->prefix = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, e->addr) == 1) {
		e->family = AF_INET6;
		e->prefix = 128;
		return 0;
	}
	return -1;
}

/* host | host:port | [v6] | [v6]:port | v6 | addr/prefix | :port */
static int parse_exclude(const char *entry, struct ps_exclude *e)
{
	char buf[128];
	char *host = buf, *port = NULL, *slash;
	memset(e, 0, sizeof *e);
	if (strlen(entry) >= sizeof buf || entry[0] == '\0')
		return -1;
	strcpy(buf, entry);
	if (buf[0] == ':' && buf[1] != ':') /* ":port"; "::1" is an address */
		return parse_port(buf + 1, strlen(buf + 1), &e->port);
	if (buf[0] == '[') {
		char *end = strchr(buf, ']');
		if (!end)
			return -1;
		*end = '\0';
		host = buf + 1;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
	} else {
		char *colon = strchr(buf, ':');
		/* exactly one colon: host:port; more: a bare IPv6 address */
		if (colon && !strchr(colon + 1, ':')) {
			*colon = '\0';
			port = colon + 1;
		}
	}
	if (port && parse_port(port, strlen(port), &e->port) < 0)
		return -1;
	slash = strchr(host, '/');
	if (slash)
		*slash = '\0';
	if (parse_addr(host, e) < 0)
		return -1;
	if (slash) {
		uint64_t bits;
		if (port || parse_uint(slash + 1, &bits) < 0 || bits > (uint64_t)e->prefix)
			return -1;
		e->prefix = (int)bits;
	}
	return 0;
}

/* "localhost" or "localhost:port" */
static bool is_localhost(const char *entry)
{
	return strncmp(entry, "localhost", 9) == 0 && (entry[9] == '\0' || entry[9] == ':');
}

static int get_excludes(ps_env_lookup get, struct ps_config *c)
{
	const char *v = get(PS_ENV_EXCLUDE);
	if (!v)
		return 0;
	const char *p = v;
	for (;;) {
		size_t len = strcspn(p, ",");
		char entry[128];
		if (len >= sizeof entry || c->n_excludes == PS_MAX_EXCLUDES)
			goto bad;
		memcpy(entry, p, len);
		entry[len] = '\0';
		if (parse_exclude(entry, &c->excludes[c->n_excludes]) < 0)
			goto bad;
		c->n_excludes++;
		if (is_localhost(entry)) {
			/* the name covers the whole loopback range and ::1 */
			if (c->n_excludes == PS_MAX_EXCLUDES)
				goto bad;
			struct ps_exclude *v4 = &c->excludes[c->n_excludes - 1];
			struct ps_exclude *v6 = &c->excludes[c->n_excludes++];
			v4->prefix = 8;
			*v6 = (struct ps_exclude){ .family = AF_INET6, .prefix = 128, .port = v4->port };
			v6->addr[15] = 1;
		}
		if (p[len] == '\0')
			return 0;
		p += len + 1;
	}
bad:
	/* Ignoring an exclusion would pool what the user wanted kept out, so the
	 * safe default for a list we cannot honour is to pool nothing. */
	c->n_excludes = 0;
	c->disable = true;
	return warn(PS_ENV_EXCLUDE, v,
		    "has an entry that is not an address, CIDR or :port (names are not resolved); "
		    "pooling is disabled");
}

/* "http,redis,memcached,any" */
static int get_protocols(ps_env_lookup get, struct ps_config *c)
{
	static const struct {
		const char *word;
		unsigned bit;
	} words[] = {
		{ "http", PS_PROTO_BIT(PS_PROTO_HTTP) },
		{ "redis", PS_PROTO_BIT(PS_PROTO_REDIS) },
		{ "memcached", PS_PROTO_BIT(PS_PROTO_MEMCACHED) },
		{ "any", PS_PROTO_BIT(PS_PROTO_OTHER) },
	};
	const char *v = get(PS_ENV_PROTOCOLS);
	unsigned mask = 0;
	if (!v)
		return 0;
	for (const char *p = v;; p++) {
		size_t len = strcspn(p, ","), i;
		for (i = 0; i < sizeof words / sizeof words[0]; i++)
			if (strlen(words[i].word) == len && strncmp(p, words[i].word, len) == 0)
				break;
		if (i == sizeof words / sizeof words[0]) {
			c->protocols = 0;
			return warn(PS_ENV_PROTOCOLS, v,
				    "is not a list of http, redis, memcached and any; nothing is pooled");
		}
		mask |= words[i].bit;
		p += len;
		if (*p == '\0')
			break;
	}
	c->protocols = mask;
	return 0;
}

/* 0, 1, or a path.  A path must contain a '/' ("./stats" for a file in the
 * current directory): a word such as "yes" or "true" is a mistake, not a
 * file to create. */
static int get_stats(ps_env_lookup get, struct ps_config *c)
{
	const char *v = get(PS_ENV_STATS);
	if (!v || strcmp(v, "0") == 0)
		return 0;
	if (strcmp(v, "1") == 0) {
		c->stats = PS_STATS_STDERR;
		return 0;
	}
	if (strchr(v, '/') && strlen(v) < sizeof c->stats_path) {
		c->stats = PS_STATS_FILE;
		strcpy(c->stats_path, v);
		return 0;
	}
	return warn(PS_ENV_STATS, v, "is not 0, 1 or a path with a '/' (e.g. ./stats); no statistics");
}

/* POOLSHIM_SHARED and its companions.  Fail closed: a bad value leaves
 * the process to its own pool, which is what it had without the keeper. */
static int get_shared(ps_env_lookup get, struct ps_config *c)
{
	int warnings = 0;
	const char *v;
	c->shared_linger_ns = PS_DEFAULT_SHARED_LINGER_MS * 1000000ull;
	snprintf(c->keeper_path, sizeof c->keeper_path, "%s", PS_KEEPER_PATH);
	v = get(PS_ENV_KEEPER);
	if (v && *v)
		snprintf(c->keeper_path, sizeof c->keeper_path, "%s", v);
	v = get(PS_ENV_RUNTIME_DIR);
	if (v && v[0] == '/' && strlen(v) < sizeof c->runtime_dir)
		strcpy(c->runtime_dir, v);
	warnings += get_bool(get, PS_ENV_SHARED, false, "is not 0 or 1; connections are not shared",
			     &c->shared);
	v = get(PS_ENV_SHARED_LINGER);
	if (v) {
		uint64_t ms;
		if (parse_seconds_ms(v, &ms) < 0 || ms == 0) {
			/* a bad linger is no cap on this process's pool: only sharing goes */
			c->shared = false;
			warnings += warn(PS_ENV_SHARED_LINGER, v,
					 "is not a number of seconds above 0 (e.g. 60 or 0.5); connections are not shared");
		} else if (ms > MAX_SECONDS * 1000) {
			c->shared_linger_ns = MAX_SECONDS * 1000 * 1000000ull;
			warnings += warn(PS_ENV_SHARED_LINGER, v,
					 "is above the maximum of 31536000 (one year); using 31536000");
		} else {
			c->shared_linger_ns = ms * 1000000ull;
		}
	}
	return warnings;
}

int ps_config_parse(struct ps_config *c, ps_env_lookup get)
{
	int warnings = 0;
	const char *v;

	memset(c, 0, sizeof *c);
	c->max_idle_per_host = PS_DEFAULT_MAX_IDLE_PER_HOST;
	c->park = true;
	c->max_idle = PS_DEFAULT_MAX_IDLE;
	c->idle_timeout_ns = PS_DEFAULT_IDLE_TIMEOUT_MS * 1000000ull;
	c->ports_all = true;
	c->log_level = PS_LOG_WARN;
	c->protocols = PS_PROTOS_DEFAULT;

	/* The level first, so that the warnings below obey it. */
	v = get(PS_ENV_LOG);
	if (v) {
		int level = ps_log_parse_level(v);
		if (level < 0)
			warnings += warn(PS_ENV_LOG, v, "is not off, error, warn, info or debug; using warn");
		else
			c->log_level = level;
	}
	ps_log_level = c->log_level;
	v = get(PS_ENV_LOG_FILE);
	if (v && *v)
		snprintf(c->log_file, sizeof c->log_file, "%s", v);

	warnings += get_bool(get, PS_ENV_DISABLE, true, "is not 0 or 1; pooling is disabled", &c->disable);
	warnings += get_count(get, c, PS_ENV_MAX_IDLE_PER_HOST, 1, 1024, &c->max_idle_per_host);
	warnings += get_count(get, c, PS_ENV_MAX_IDLE, 1, 65536, &c->max_idle);
	warnings += get_seconds(get, c, PS_ENV_IDLE_TIMEOUT, 1, &c->idle_timeout_ns);
	warnings += get_seconds(get, c, PS_ENV_MAX_LIFETIME, 0, &c->max_lifetime_ns);
	warnings += get_count(get, c, PS_ENV_MAX_REUSE, 0, UINT32_MAX, &c->max_reuse);
	warnings += get_bool(get, PS_ENV_UNIX, false, "is not 0 or 1; AF_UNIX sockets are not pooled",
			     &c->unix_sockets);
	warnings += get_bool(get, PS_ENV_PARK, false,
			     "is not 0 or 1; closed connections are not parked on their numbers", &c->park);

	v = get(PS_ENV_PORTS);
	if (v) {
		c->ports_all = false;
		if (parse_ports(v, c->ports) < 0) {
			/* an empty bitmap: the filter lets no port through */
			memset(c->ports, 0, sizeof c->ports);
			warnings += warn(PS_ENV_PORTS, v,
					 "is not a list of ports and ranges (e.g. 80,8000-8100); no port is pooled");
		}
	}
	warnings += get_excludes(get, c);
	warnings += get_protocols(get, c);
	warnings += get_stats(get, c);
	warnings += get_shared(get, c);
	return warnings;
}

static bool prefix_match(const uint8_t *a, const uint8_t *b, int bits)
{
	int bytes = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool ps_config_allows(const struct ps_config *c, int family, const uint8_t *addr, uint16_t port)
{
	if (c->protocols == 0)
		return false;
	if (!c->ports_all && !(c->ports[port / 8] & (1u << (port % 8))))
		return false;
	for (int i = 0; i < c->n_excludes; i++) {
		const struct ps_exclude *e = &c->excludes[i];
		if (e->port && e->port != port)
			continue;
		if (e->family == 0 || (e->family == family && prefix_match(addr, e->addr, e->prefix)))
			return false;
		/* ::ffff:a.b.c.d reaches the IPv4 host a.b.c.d: IPv4 entries cover it */
		if (e->family == AF_INET && family == AF_INET6 &&
		    IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)addr) &&
		    prefix_match(addr + 12, e->addr, e->prefix))
			return false;
	}
	return true;
}
