/* Counters for POOLSHIM_STATS.  Relaxed atomics: exact totals, no ordering. */
#ifndef POOLSHIM_STATS_H
#define POOLSHIM_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ps_stat {
	PS_ST_CONNECTS,        /* connect() calls on tracked TCP sockets */
	PS_ST_HITS,            /* satisfied from the pool */
	PS_ST_MISSES,          /* real connect made */
	PS_ST_CHECKINS,        /* connections pooled at close() */
	PS_ST_REFUSED,         /* close() on a tracked connection not pooled */
	PS_ST_REFUSED_PENDING, /* unread bytes */
	PS_ST_REFUSED_PEER,    /* peer closed or reset, or error on the socket */
	PS_ST_REFUSED_WRITE,   /* last I/O was a write: a response may be on its way */
	PS_ST_REFUSED_SHARED,  /* other references: dup, fork, fdopen */
	PS_ST_REFUSED_STATE,   /* shutdown, I/O error, option, busy in another thread */
	PS_ST_REFUSED_SERVER_FIRST,
	PS_ST_REFUSED_TLS,
	PS_ST_REFUSED_AUTH,
	PS_ST_REFUSED_CAPS,    /* lifetime / reuse caps, or the pool could not take it */
	PS_ST_REFUSED_FILTER,  /* POOLSHIM_PORTS / POOLSHIM_EXCLUDE / unsafe destination */
	PS_ST_STALE,           /* idle connection found dead at checkout */
	PS_ST_REAPED,
	PS_ST_EVICTED,
	PS_ST_IDENTITY,        /* socket cookie mismatch: fd replaced behind the shim */
	PS_ST_STALE_RETRIES,
	/* what the protocol tracker (proto.h) says at close */
	PS_ST_REFUSED_SERVER_CLOSE, /* the server asked to close: Connection: close, HTTP/1.0, body to EOF */
	PS_ST_REFUSED_CLIENT_CLOSE, /* the request asked the server to close */
	PS_ST_REFUSED_SESSION,      /* state bound to the connection: Redis SELECT/AUTH/MULTI..., Upgrade */
	PS_ST_REFUSED_PROTOCOL,     /* not a protocol POOLSHIM_PROTOCOLS pools, or one that cannot be framed */
	PS_ST_REFUSED_INCOMPLETE,   /* closed in the middle of an exchange */
	PS_ST_REFUSED_NO_EXCHANGE,  /* closed before one complete request and answer */
	PS_ST_REFUSED_UNSEEN,       /* bytes moved where the shim cannot read them (sendfile, splice) */
	PS_ST_REFUSED_SAME_PROCESS, /* the server listens in this very process */
	PS_ST_LATE_BYTES,           /* a reused connection replaced before its first write */
	PS_ST_SHARED_TAKEN,    /* connections received from the keeper (shared.h) */
	PS_ST_SHARED_OFFERED,  /* idle connections handed to the keeper */
	PS_ST_PARKED,          /* checkins kept on the program's own number (park.h) */
	PS_ST_SETTLED,         /* warm sockets made fresh: another destination, bind, ... */
	PS_ST_COUNT
};

/* Sharded by thread: a pooled cycle counts four events, and threads on
 * different CPUs must not pass one cache line back and forth for it.  A
 * thread takes a shard at its first count; a read sums them. */
#define PS_STAT_SHARDS 8

struct ps_stat_shard {
	uint64_t v[PS_ST_COUNT];
} __attribute__((aligned(64)));

extern struct ps_stat_shard ps_stats[PS_STAT_SHARDS];
extern __thread int ps_stat_shard_plus_one __attribute__((tls_model("initial-exec")));

int ps_stat_pick_shard(void);

static inline void ps_stat_inc(enum ps_stat s)
{
	int i = ps_stat_shard_plus_one;
	if (__builtin_expect(!i, 0))
		i = ps_stat_pick_shard();
	__atomic_fetch_add(&ps_stats[i - 1].v[s], 1, __ATOMIC_RELAXED);
}

static inline uint64_t ps_stat_get(enum ps_stat s)
{
	uint64_t sum = 0;
	for (int i = 0; i < PS_STAT_SHARDS; i++)
		sum += __atomic_load_n(&ps_stats[i].v[s], __ATOMIC_RELAXED);
	return sum;
}

const char *ps_stat_name(enum ps_stat s);

/* The counter's reason in the summary's plain words ("closed right after a
 * write, before the reply was read"), for log lines; NULL for a counter that
 * is not a reason (connects, reuse_hits, ...). */
const char *ps_stat_label(enum ps_stat s);

/* "key=value key=value ..." without newline; returns length like snprintf. */
int ps_stats_format(char *buf, size_t len);

/* Every counter, read once: the exit summary works on a stable set. */
void ps_stats_snapshot(uint64_t v[PS_ST_COUNT]);

/* What the exit summary needs to know besides the counters. */
struct ps_summary_ctx {
	bool filters_set; /* POOLSHIM_PORTS or POOLSHIM_EXCLUDE was given */
	bool shared;      /* POOLSHIM_SHARED: connections outlive the process */
};

/*
 * The summary's first line, without prefix or newline: how many connects,
 * how many were served from the pool, and the main reason for the others,
 * in plain words ("200 connects, 0 reused: the server closed every
 * connection, or every request asked it to (Connection: close)").
 * Returns the length like snprintf; 0 and "" for a process that made no
 * connect the shim could pool.
 */
int ps_summary_headline(char *buf, size_t len, const uint64_t v[PS_ST_COUNT],
			const struct ps_summary_ctx *ctx);

/* The whole exit summary (POOLSHIM_STATS=1): the headline, then detail
 * lines naming every reason that counted, each line starting with prefix
 * and ending with a newline.  "" for a process that made no connect. */
int ps_summary_format(char *buf, size_t len, const char *prefix, const uint64_t v[PS_ST_COUNT],
		      const struct ps_summary_ctx *ctx);

void ps_stats_reset(void);

#endif
