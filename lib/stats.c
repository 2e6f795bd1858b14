/* Owns the counters, their names in the POOLSHIM_STATS=path line, and the
 * exit summary that says in plain words what they mean. */
#include "stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct ps_stat_shard ps_stats[PS_STAT_SHARDS];
__thread int ps_stat_shard_plus_one __attribute__((tls_model("initial-exec")));

int ps_stat_pick_shard(void)
{
	static unsigned next; /* atomic */
	ps_stat_shard_plus_one = (int)(__atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % PS_STAT_SHARDS) + 1;
	return ps_stat_shard_plus_one;
}

static const char *const names[PS_ST_COUNT] = {
	[PS_ST_CONNECTS] = "connects",
	[PS_ST_HITS] = "reuse_hits",
	[PS_ST_MISSES] = "misses",
	[PS_ST_CHECKINS] = "checkins",
	[PS_ST_REFUSED] = "refused",
	[PS_ST_REFUSED_PENDING] = "refused_pending_bytes",
	[PS_ST_REFUSED_PEER] = "refused_peer_closed",
	[PS_ST_REFUSED_WRITE] = "refused_last_write",
	[PS_ST_REFUSED_SHARED] = "refused_shared_fd",
	[PS_ST_REFUSED_STATE] = "refused_state",
	[PS_ST_REFUSED_SERVER_FIRST] = "refused_server_first",
	[PS_ST_REFUSED_TLS] = "refused_tls",
	[PS_ST_REFUSED_AUTH] = "refused_auth",
	[PS_ST_REFUSED_CAPS] = "refused_caps",
	[PS_ST_REFUSED_FILTER] = "refused_filter",
	[PS_ST_STALE] = "stale_at_checkout",
	[PS_ST_REAPED] = "reaped",
	[PS_ST_EVICTED] = "evicted",
	[PS_ST_IDENTITY] = "identity_mismatches",
	[PS_ST_STALE_RETRIES] = "stale_retries",
	[PS_ST_REFUSED_SERVER_CLOSE] = "refused_server_close",
	[PS_ST_REFUSED_CLIENT_CLOSE] = "refused_client_close",
	[PS_ST_REFUSED_SESSION] = "refused_session",
	[PS_ST_REFUSED_PROTOCOL] = "refused_protocol",
	[PS_ST_REFUSED_INCOMPLETE] = "refused_incomplete",
	[PS_ST_REFUSED_NO_EXCHANGE] = "refused_no_exchange",
	[PS_ST_REFUSED_UNSEEN] = "refused_unseen",
	[PS_ST_REFUSED_SAME_PROCESS] = "refused_same_process",
	[PS_ST_LATE_BYTES] = "late_bytes",
	[PS_ST_SHARED_TAKEN] = "shared_taken",
	[PS_ST_SHARED_OFFERED] = "shared_offered",
	[PS_ST_PARKED] = "parked",
	[PS_ST_SETTLED] = "settled",
};

const char *ps_stat_name(enum ps_stat s) { return names[s]; }

int ps_stats_format(char *buf, size_t len)
{
	size_t off = 0;
	for (int i = 0; i < PS_ST_COUNT; i++) {
		/* past the end, keep counting the length as snprintf does */
		int n = snprintf(off < len ? buf + off : NULL, off < len ? len - off : 0, "%s%s=%llu", i ? " " : "",
				 names[i], (unsigned long long)ps_stat_get((enum ps_stat)i));
		if (n < 0)
			return n;
		off += (size_t)n;
	}
	return (int)off;
}

void ps_stats_reset(void) { memset(ps_stats, 0, sizeof ps_stats); }

void ps_stats_snapshot(uint64_t v[PS_ST_COUNT])
{
	for (int i = 0; i < PS_ST_COUNT; i++)
		v[i] = ps_stat_get((enum ps_stat)i);
}

/* ---- the exit summary ----------------------------------------------- */

/* Connects that failed: counted as connects, neither reused nor new. */
static uint64_t failed_connects(const uint64_t *v)
{
	uint64_t done = v[PS_ST_HITS] + v[PS_ST_MISSES];
	return v[PS_ST_CONNECTS] > done ? v[PS_ST_CONNECTS] - done : 0;
}

enum when { ANY, FILTERS_SET, NO_FILTERS };
enum group { AT_CLOSE, WHILE_IDLE, AT_CONNECT };

/*
 * Why a connect had to make a new connection, one row per reason, in the
 * order ties are broken.  A reason counted by a new counter gets a row here
 * and nothing else changes.  `every` is the headline when the reason
 * explains every new connection after the first; `label` names it in the
 * detail lines and after a count ("49 closed right after a write"), so it
 * reads for one connection as for many.
 */
static const struct reason {
	enum ps_stat stat;
	uint64_t (*count)(const uint64_t *v); /* instead of v[stat] */
	enum when when;
	enum group group;
	/* closing it marks the destination unsafe: the connects to it that
	 * follow count as filtered, and belong to this reason */
	bool marks_unsafe;
	const char *every;
	const char *label;
} reasons[] = {
	{ PS_ST_REFUSED_CLIENT_CLOSE, NULL, ANY, AT_CLOSE, false,
	  "every request asked the server to close (Connection: close)",
	  "asked the server to close (Connection: close)" },
	{ PS_ST_REFUSED_SERVER_CLOSE, NULL, ANY, AT_CLOSE, false,
	  "the server closes after every answer (Connection: close, HTTP/1.0, or a body that ends "
	  "with the connection)",
	  "the server said it would close" },
	{ PS_ST_REFUSED_SESSION, NULL, ANY, AT_CLOSE, false,
	  "every connection carried state of its own (Redis SELECT, AUTH, MULTI, SUBSCRIBE, an HTTP "
	  "Upgrade, ...), which must not reach the next user",
	  "with state bound to the connection (Redis SELECT/AUTH/MULTI/SUBSCRIBE, Upgrade, ...)" },
	{ PS_ST_REFUSED_PROTOCOL, NULL, ANY, AT_CLOSE, false,
	  "the protocol is not one poolshim pools (HTTP/1.x, Redis, memcached; POOLSHIM_PROTOCOLS=...,any "
	  "adds others), or its messages could not be followed",
	  "in a protocol poolshim does not pool (POOLSHIM_PROTOCOLS)" },
	{ PS_ST_REFUSED_INCOMPLETE, NULL, ANY, AT_CLOSE, false,
	  "the program closed every connection in the middle of an answer",
	  "closed in the middle of an answer" },
	{ PS_ST_REFUSED_NO_EXCHANGE, NULL, ANY, AT_CLOSE, false,
	  "the program closed every connection before a complete request and answer",
	  "closed before a complete request and answer" },
	{ PS_ST_REFUSED_UNSEEN, NULL, ANY, AT_CLOSE, false,
	  "the program sent with sendfile or splice, which poolshim cannot follow",
	  "written with sendfile or splice" },
	{ PS_ST_REFUSED_SAME_PROCESS, NULL, ANY, AT_CLOSE, false,
	  "the server runs in this same process, and would wait for a close it never sees",
	  "to a server in this same process" },
	{ PS_ST_REFUSED_PEER, NULL, ANY, AT_CLOSE, false,
	  "the server closed every connection, or every request asked it to (Connection: close)",
	  "closed by the server or by Connection: close" },
	{ PS_ST_REFUSED_WRITE, NULL, ANY, AT_CLOSE, false,
	  "the program closed every connection right after a write, before reading the reply",
	  "closed right after a write, before the reply was read" },
	{ PS_ST_REFUSED_PENDING, NULL, ANY, AT_CLOSE, true,
	  "the program closed every connection with part of the reply unread",
	  "closed with part of the reply unread" },
	{ PS_ST_REFUSED_SHARED, NULL, ANY, AT_CLOSE, false,
	  "every connection was shared with another descriptor or process (dup, fork, fdopen) "
	  "when it was closed",
	  "shared with another descriptor or process (dup, fork, fdopen)" },
	{ PS_ST_REFUSED_SERVER_FIRST, NULL, ANY, AT_CLOSE, true,
	  "the server speaks first (SMTP, FTP, SSH, ...); such connections are never pooled",
	  "to a server that speaks first" },
	{ PS_ST_REFUSED_TLS, NULL, ANY, AT_CLOSE, true,
	  "the connections use TLS, which cannot be pooled", "using TLS" },
	{ PS_ST_REFUSED_AUTH, NULL, ANY, AT_CLOSE, false,
	  "the connections carry NTLM or Negotiate authentication, which belongs to the connection",
	  "with NTLM or Negotiate authentication" },
	{ PS_ST_REFUSED_FILTER, NULL, FILTERS_SET, AT_CLOSE, false,
	  "POOLSHIM_PORTS or POOLSHIM_EXCLUDE leaves the destination out",
	  "left out by POOLSHIM_PORTS, POOLSHIM_EXCLUDE or as unsafe" },
	{ PS_ST_REFUSED_FILTER, NULL, NO_FILTERS, AT_CLOSE, false,
	  "the destination was found unsafe to pool earlier in this process",
	  "to a destination found unsafe earlier" },
	{ PS_ST_REFUSED_STATE, NULL, ANY, AT_CLOSE, false,
	  "every connection was shut down, failed, was bound to a local port, or had a socket option "
	  "poolshim cannot carry over",
	  "shut down, failed, bound to a local port, busy in another thread, or with an option "
	  "poolshim cannot carry over" },
	{ PS_ST_REFUSED_CAPS, NULL, ANY, AT_CLOSE, false,
	  "every connection reached POOLSHIM_MAX_LIFETIME or POOLSHIM_MAX_REUSE",
	  "past POOLSHIM_MAX_LIFETIME or POOLSHIM_MAX_REUSE, or with no room in the pool" },
	{ PS_ST_STALE, NULL, ANY, WHILE_IDLE, false,
	  "the server had closed every idle connection by the next connect "
	  "(its keep-alive timeout is shorter than POOLSHIM_IDLE_TIMEOUT)",
	  "closed by the server while idle" },
	{ PS_ST_REAPED, NULL, ANY, WHILE_IDLE, false,
	  "every idle connection expired before the next connect "
	  "(POOLSHIM_IDLE_TIMEOUT, or a lifetime or reuse limit)",
	  "expired while idle (POOLSHIM_IDLE_TIMEOUT, or a lifetime or reuse limit)" },
	{ PS_ST_EVICTED, NULL, ANY, WHILE_IDLE, false,
	  "the pool was full (POOLSHIM_MAX_IDLE_PER_HOST, POOLSHIM_MAX_IDLE)",
	  "dropped because the pool was full" },
	{ PS_ST_IDENTITY, NULL, ANY, WHILE_IDLE, false,
	  "the program closed its connections behind poolshim's back "
	  "(a raw close system call, close_range)",
	  "closed behind poolshim's back" },
	{ PS_ST_CONNECTS, failed_connects, ANY, AT_CONNECT, false,
	  "every connect failed (refused or unreachable)", "failed to connect" },
};

#define N_REASONS (sizeof reasons / sizeof reasons[0])

const char *ps_stat_label(enum ps_stat s)
{
	/* the first row for a counter is its most general wording */
	for (size_t i = 0; i < N_REASONS; i++)
		if (reasons[i].stat == s && !reasons[i].count)
			return reasons[i].label;
	return NULL;
}

static bool applies(const struct reason *r, const struct ps_summary_ctx *ctx)
{
	return r->when == ANY || (r->when == FILTERS_SET) == ctx->filters_set;
}

static uint64_t raw_count(const struct reason *r, const uint64_t *v)
{
	return r->count ? r->count(v) : v[r->stat];
}

/* Each reason's share of the new connections; the connects refused because
 * a destination was marked unsafe go to the reason that marked it. */
static void shares(const uint64_t *v, const struct ps_summary_ctx *ctx, uint64_t *share)
{
	int marker = -1, unsafe = -1;
	for (size_t i = 0; i < N_REASONS; i++) {
		share[i] = applies(&reasons[i], ctx) ? raw_count(&reasons[i], v) : 0;
		if (reasons[i].marks_unsafe && share[i] && (marker < 0 || share[i] > share[marker]))
			marker = (int)i;
		if (reasons[i].stat == PS_ST_REFUSED_FILTER && reasons[i].when == NO_FILTERS)
			unsafe = (int)i;
	}
	if (!ctx->filters_set && marker >= 0 && unsafe >= 0) {
		share[marker] += share[unsafe];
		share[unsafe] = 0;
	}
}

static const char *plural(uint64_t n, const char *one, const char *many) { return n == 1 ? one : many; }

int ps_summary_headline(char *buf, size_t len, const uint64_t v[PS_ST_COUNT],
			const struct ps_summary_ctx *ctx)
{
	typedef unsigned long long ull;
	uint64_t connects = v[PS_ST_CONNECTS];
	uint64_t reused = v[PS_ST_HITS] < connects ? v[PS_ST_HITS] : connects;
	uint64_t others = connects - reused;
	/* the first connect to a destination has nothing to reuse */
	uint64_t avoidable = others ? others - 1 : 0;
	uint64_t share[N_REASONS];
	size_t best = 0;

	if (connects == 0)
		return snprintf(buf, len, "%s", "");
	if (connects == 1 && reused == 0)
		return snprintf(buf, len, "1 connect: nothing to reuse in one process%s",
				ctx->shared ? "" : "; see --shared");
	shares(v, ctx, share);
	for (size_t i = 1; i < N_REASONS; i++)
		if (share[i] > share[best])
			best = i;
	if (avoidable == 0 || share[best] == 0) {
		if (reused == 0)
			return snprintf(buf, len,
					"%llu connects, 0 reused: the connections were open at the same time, "
					"or went to different destinations",
					(ull)connects);
		return snprintf(buf, len, "%llu %s, %llu reused from the pool", (ull)connects,
				plural(connects, "connect", "connects"), (ull)reused);
	}
	if (share[best] >= avoidable)
		return snprintf(buf, len, "%llu connects, %llu reused: %s", (ull)connects, (ull)reused,
				reasons[best].every);
	return snprintf(buf, len, "%llu connects, %llu reused; main reason for the other %llu: %llu %s",
			(ull)connects, (ull)reused, (ull)others, (ull)share[best], reasons[best].label);
}

/* Appends to buf at *off, counting past the end like snprintf. */
static void add(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void add(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(*off < len ? buf + *off : NULL, *off < len ? len - *off : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		*off += (size_t)n;
}

/* "<prefix>  <title>: 3 label, 1 label\n" for the group's non-zero reasons. */
static void add_group(char *buf, size_t len, size_t *off, const char *prefix, const char *title,
		      enum group g, const uint64_t *v, const struct ps_summary_ctx *ctx)
{
	bool first = true;
	for (size_t i = 0; i < N_REASONS; i++) {
		const struct reason *r = &reasons[i];
		uint64_t n = raw_count(r, v);
		if (r->group != g || !applies(r, ctx) || n == 0)
			continue;
		add(buf, len, off, "%s%s %llu %s", first ? prefix : ",", first ? title : "",
		    (unsigned long long)n, r->label);
		first = false;
	}
	if (!first)
		add(buf, len, off, "\n");
}

int ps_summary_format(char *buf, size_t len, const char *prefix, const uint64_t v[PS_ST_COUNT],
		      const struct ps_summary_ctx *ctx)
{
	typedef unsigned long long ull;
	size_t off = 0;
	char head[512];
	if (len)
		buf[0] = '\0';
	if (ps_summary_headline(head, sizeof head, v, ctx) <= 0)
		return 0;
	add(buf, len, &off, "%s%s\n", prefix, head);
	if (v[PS_ST_CONNECTS] > 1)
		add(buf, len, &off, "%s  %llu new %s; at close %llu kept in the pool, %llu not kept\n", prefix,
		    (ull)v[PS_ST_MISSES], plural(v[PS_ST_MISSES], "connection", "connections"),
		    (ull)v[PS_ST_CHECKINS], (ull)v[PS_ST_REFUSED]);
	add_group(buf, len, &off, prefix, "  not kept at close:", AT_CLOSE, v, ctx);
	add_group(buf, len, &off, prefix, "  idle connections lost:", WHILE_IDLE, v, ctx);
	add_group(buf, len, &off, prefix, "  connects:", AT_CONNECT, v, ctx);
	if (v[PS_ST_SHARED_TAKEN] || v[PS_ST_SHARED_OFFERED])
		add(buf, len, &off, "%s  shared with other processes: %llu received from the keeper, %llu handed to it\n",
		    prefix, (ull)v[PS_ST_SHARED_TAKEN], (ull)v[PS_ST_SHARED_OFFERED]);
	if (v[PS_ST_STALE_RETRIES])
		add(buf, len, &off,
		    "%s  %llu %s sent again on a new connection: the server had closed the reused one\n",
		    prefix, (ull)v[PS_ST_STALE_RETRIES], plural(v[PS_ST_STALE_RETRIES], "request", "requests"));
	return (int)off;
}
