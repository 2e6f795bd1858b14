/* Counters for POOLSHIM_STATS.  Relaxed atomics: exact totals, no ordering. */
#ifndef POOLSHIM_STATS_H
#define POOLSHIM_STATS_H

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
	PS_ST_COUNT
};

extern uint64_t ps_stats[PS_ST_COUNT];

static inline void ps_stat_inc(enum ps_stat s)
{
	__atomic_fetch_add(&ps_stats[s], 1, __ATOMIC_RELAXED);
}

static inline uint64_t ps_stat_get(enum ps_stat s)
{
	return __atomic_load_n(&ps_stats[s], __ATOMIC_RELAXED);
}

const char *ps_stat_name(enum ps_stat s);

/* "key=value key=value ..." without newline; returns length like snprintf. */
int ps_stats_format(char *buf, size_t len);

/* The human-readable block POOLSHIM_STATS=1 prints to stderr: a few lines,
 * each starting with prefix. */
int ps_stats_format_block(char *buf, size_t len, const char *prefix);

void ps_stats_reset(void);

#endif
