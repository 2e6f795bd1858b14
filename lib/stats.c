/* Owns the counters and their names. */
#include "stats.h"

#include <stdio.h>
#include <string.h>

uint64_t ps_stats[PS_ST_COUNT];

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

int ps_stats_format_block(char *buf, size_t len, const char *prefix)
{
#define V(s) ((unsigned long long)ps_stat_get(s))
	return snprintf(buf, len,
		"%sconnects %llu: %llu reused from the pool, %llu new; %llu pooled at close, %llu refused\n"
		"%srefused: pending bytes %llu, peer closed %llu, last I/O a write %llu, shared fd %llu, "
		"state %llu, server speaks first %llu, TLS %llu, auth %llu, caps %llu, filtered %llu\n"
		"%sidle: stale at checkout %llu, reaped %llu, evicted %llu, identity mismatches %llu, "
		"stale-reuse retries %llu\n",
		prefix, V(PS_ST_CONNECTS), V(PS_ST_HITS), V(PS_ST_MISSES), V(PS_ST_CHECKINS),
		V(PS_ST_REFUSED), prefix, V(PS_ST_REFUSED_PENDING), V(PS_ST_REFUSED_PEER),
		V(PS_ST_REFUSED_WRITE), V(PS_ST_REFUSED_SHARED), V(PS_ST_REFUSED_STATE),
		V(PS_ST_REFUSED_SERVER_FIRST), V(PS_ST_REFUSED_TLS), V(PS_ST_REFUSED_AUTH),
		V(PS_ST_REFUSED_CAPS), V(PS_ST_REFUSED_FILTER), prefix, V(PS_ST_STALE), V(PS_ST_REAPED),
		V(PS_ST_EVICTED), V(PS_ST_IDENTITY), V(PS_ST_STALE_RETRIES));
#undef V
}
