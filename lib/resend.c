/* Owns the stale-reuse decision and the replacement of a reused connection
 * under the program's number (resend.h).  The replacement runs in the
 * RECONNECTING state, so a close() from another thread or a signal handler
 * meanwhile is left pending and made here once the number is settled. */
#include "resend.h"
#include "clock.h"
#include "events.h"
#include "handoff.h"
#include "lifecycle.h"
#include "log.h"
#include "probe.h"
#include "ready.h"
#include "state.h"
#include "sys.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/time.h>

#define MS 1000000ull

/* What the program allows a blocking call on this socket to take: its own
 * SO_RCVTIMEO/SO_SNDTIMEO, else as long as a connect may take here. */
static uint64_t blocking_budget(const struct ps_conn *c, enum ps_dir dir)
{
	int name = dir == PS_DIR_READ ? SO_RCVTIMEO : SO_SNDTIMEO;
	for (int i = 0; i < c->n_opts; i++) {
		const struct ps_opt *o = &c->opts[i];
		struct timeval tv;
		if (o->level != SOL_SOCKET || o->name != name || o->len != sizeof tv)
			continue;
		memcpy(&tv, o->value, sizeof tv);
		uint64_t ns = (uint64_t)tv.tv_sec * PS_NS_PER_SEC + (uint64_t)tv.tv_usec * 1000;
		if (ns)
			return ns;
	}
	return 10000 * MS;
}

/* A non-blocking program would have waited for a fresh connect's handshake,
 * one round trip: it waits no longer here (a few RTTs, at least 1 ms, as
 * timers go). */
static uint64_t nonblocking_budget(uint32_t rtt_us)
{
	uint64_t ns = 3ull * rtt_us * 1000;
	return ns < MS ? MS : ns > 100 * MS ? 100 * MS : ns;
}

/* The replacement proper, in RECONNECTING; a close left pending meanwhile
 * is made now, and the program's call then sees its original result. */
static bool replace(struct ps_conn *c, int fd, uint64_t deadline_ns)
{
	c->retried = true;
	ps_unused_remove(c);
	const void *bytes = c->replay ? c->replay->bytes : NULL;
	bool ok = ps_reconnect(c, fd, deadline_ns, bytes, c->replay_len) == 0;
	if (ps_life_end_reconnect(c)) {
		int saved = errno;
		ps_close(fd);
		errno = saved;
		return false;
	}
	if (!ok)
		ps_conn_add_taint(c, PS_T_IO_ERROR);
	return ok;
}

bool ps_resend(struct ps_conn *c, int fd, enum ps_dir dir)
{
	if (!c->reused || c->got_data || c->retried || c->replay_overflow ||
	    (ps_conn_taint(c) & PS_T_SHUTDOWN))
		return false;
	struct tcp_info ti;
	socklen_t len = sizeof ti;
	memset(&ti, 0, sizeof ti);
	int saved = errno;
	int r = ps_sys.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	errno = saved;
	/* any byte of this use acknowledged: the server may have acted on it
	 * (tcpi_bytes_acked counts our SYN as one) */
	if (c->replay_len &&
	    (r < 0 || len < offsetof(struct tcp_info, tcpi_bytes_acked) + sizeof ti.tcpi_bytes_acked ||
	     ti.tcpi_bytes_acked > c->sent_before_use + 1))
		return false;
	if (!ps_life_begin_reconnect(c))
		return false; /* closed or shut meanwhile */
	uint64_t budget = c->nonblock ? nonblocking_budget(r == 0 ? ti.tcpi_rtt : 0)
				      : blocking_budget(c, dir);
	return replace(c, fd, ps_now_ns() + budget);
}

bool ps_replace_unused(struct ps_conn *c, int fd)
{
	if (!c->reused || c->got_data || __atomic_load_n(&c->wrote, __ATOMIC_RELAXED) || c->retried ||
	    (ps_conn_taint(c) & PS_T_SHUTDOWN) || !ps_life_begin_reconnect(c))
		return false;
	/* a non-blocking program gets a connect in progress, as from its own */
	return replace(c, fd, c->nonblock ? 0 : ps_now_ns() + blocking_budget(c, PS_DIR_WRITE));
}
