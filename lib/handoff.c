/* Owns checkout and checkin.  A connection moves between the program and the
 * pool only here; every move is preceded by its proofs:
 *   checkin:  not tainted, last I/O a read, caps, same cookie, peek == EAGAIN,
 *             no other thread inside a call on it;
 *   checkout: not expired, same cookie, peek == EAGAIN.
 * The pool holds a connection on a hidden descriptor (an F_DUPFD_CLOEXEC
 * copy placed high), closed again as soon as checkout has put the connection
 * on the program's fd.  Keeping it open while the program uses the connection
 * would save two syscalls per cycle, but a close the shim cannot see (a raw
 * syscall) would then leave the connection open behind the program's back.
 * Pool lock: held only to take/put/reap; proofs and closes run without it. */
#include "handoff.h"
#include "clock.h"
#include "config.h"
#include "fdtable.h"
#include "log.h"
#include "probe.h"
#include "state.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static void log_decision(const char *what, const struct ps_conn *c, const char *why)
{
	if (ps_log_level >= PS_LOG_DEBUG) {
		char dest[160];
		ps_key_format(&c->key, dest, sizeof dest);
		ps_log_write(PS_LOG_DEBUG, what, "fd %d (hidden %d) %s: %s", c->fd, c->hidden, dest,
			     why);
	}
}

static int build_key(const struct ps_conn *c, const struct sockaddr *sa, socklen_t len,
		     struct ps_key *k)
{
	if (ps_key_init(k, c->type, c->protocol, sa, len) < 0)
		return -1;
	ps_key_copy_local(k, &c->key);
	return 0;
}

static bool allowed(const struct ps_key *k)
{
	if (k->family == AF_UNIX)
		return true;
	return ps_config_allows(&ps_config, k->family, k->addr, ntohs(k->port));
}

static bool expired(const struct ps_conn *c, uint64_t now)
{
	return now - c->last_used_ns >= ps_config.idle_timeout_ns ||
	       (ps_config.max_lifetime_ns && now - c->created_ns >= ps_config.max_lifetime_ns) ||
	       (ps_config.max_reuse && c->reuse_count >= ps_config.max_reuse);
}

/* The previous user's options go back to their defaults; the new user's
 * options (set on its fresh socket, which dup3 replaces) are applied. */
static int carry_options(struct ps_conn *c, const struct ps_conn *fresh)
{
	for (int i = 0; i < c->n_opts; i++) {
		const struct ps_opt *o = &c->opts[i];
		bool wanted = false;
		for (int j = 0; j < fresh->n_opts && !wanted; j++)
			wanted = fresh->opts[j].level == o->level && fresh->opts[j].name == o->name;
		if (!wanted &&
		    ps_sys.setsockopt(c->hidden, o->level, o->name, o->default_value, o->default_len) < 0)
			return -1;
	}
	for (int j = 0; j < fresh->n_opts; j++) {
		const struct ps_opt *o = &fresh->opts[j];
		if (ps_sys.setsockopt(c->hidden, o->level, o->name, o->value, o->len) < 0)
			return -1;
	}
	memcpy(c->opts, fresh->opts, sizeof c->opts);
	c->n_opts = fresh->n_opts;
	return 0;
}

/* Registrations belong to (socket, fd number) pairs: see conn.h. */
static void epoll_detach(struct ps_conn *c, int fd)
{
	for (int i = 0; i < c->n_epoll; i++)
		ps_sys.epoll_ctl(c->epoll[i].epfd, EPOLL_CTL_DEL, fd, NULL);
	c->n_epoll = 0;
}

static void epoll_attach(struct ps_conn *c, const struct ps_conn *from, int fd)
{
	struct ps_epoll_reg regs[PS_MAX_EPOLL];
	int n = from->n_epoll;
	memcpy(regs, from->epoll, sizeof regs);
	for (int i = 0; i < n; i++)
		ps_sys.epoll_ctl(regs[i].epfd, EPOLL_CTL_ADD, fd, &regs[i].ev);
	memcpy(c->epoll, regs, sizeof regs);
	c->n_epoll = n;
}

/* Puts idle connection c in place of the program's fresh socket at fd. */
static int adopt(struct ps_conn *c, struct ps_conn *fresh, int fd)
{
	if (c->nonblock != fresh->nonblock) {
		if (ps_sys.fcntl(c->hidden, F_SETFL, fresh->nonblock ? O_NONBLOCK : 0) < 0)
			return -1;
		c->nonblock = fresh->nonblock; /* O_NONBLOCK lives on the socket's open file */
	}
	if (carry_options(c, fresh) < 0)
		return -1;
	if (ps_sys.dup3(c->hidden, fd, fresh->cloexec ? O_CLOEXEC : 0) < 0)
		return -1;
	int hidden = c->hidden;
	c->hidden = -1;
	ps_fd_cas(hidden, c, NULL);
	ps_sys.close(hidden);
	epoll_attach(c, fresh, fd);
	c->fd = fd;
	c->cloexec = fresh->cloexec;
	c->reused = true;
	c->retried = false;
	c->got_data = false;
	c->replay_overflow = false;
	c->replay_len = 0;
	c->reuse_count++;
	c->wrote = false;
	__atomic_store_n(&c->last_io, PS_IO_NONE, __ATOMIC_RELAXED);
	ps_conn_set_state(c, PS_ACTIVE);
	struct ps_conn *old;
	ps_fd_swap(fd, c, &old);
	if (old == fresh)
		ps_conn_free(fresh);
	else
		ps_release_stale(old, fd);
	return 0;
}

int ps_checkout(struct ps_conn *fresh, int fd, const struct sockaddr *sa, socklen_t len,
		int *nonblock)
{
	struct ps_key k;
	ps_check_fork();
	ps_stat_inc(PS_ST_CONNECTS);
	if (fresh->generation != ps_g.generation)
		ps_conn_add_taint(fresh, PS_T_SHARED); /* inherited across fork */
	if (ps_conn_taint(fresh) || build_key(fresh, sa, len, &k) < 0)
		return 0;
	if (!allowed(&k)) {
		ps_conn_add_taint(fresh, PS_T_FILTER);
		return 0;
	}
	/* bounded: every pass removes one idle connection of this key */
	for (unsigned tries = 0; tries <= ps_config.max_idle_per_host; tries++) {
		if (ps_lock() < 0)
			return 0;
		if (ps_unsafe_has_locked(&k)) {
			ps_unlock();
			ps_conn_add_taint(fresh, PS_T_FILTER);
			return 0;
		}
		struct ps_conn *c = ps_pool_take(&ps_g.pool, &k);
		ps_unlock();
		if (!c)
			return 0;
		/* read the clock after the take: another thread may have pooled c
		 * after any earlier reading, and the ages below are unsigned */
		if (expired(c, ps_now_ns())) {
			ps_stat_inc(PS_ST_REAPED);
			log_decision("checkout", c, "expired");
			ps_terminate(c);
			continue;
		}
		if (!ps_probe_same(c->hidden, c->cookie)) {
			/* the hidden fd was closed behind our back: not ours to close */
			ps_stat_inc(PS_ST_IDENTITY);
			log_decision("checkout", c, "identity changed");
			ps_fd_cas(c->hidden, c, NULL);
			c->hidden = -1;
			ps_conn_free(c);
			continue;
		}
		enum ps_health h = ps_probe_health(c->hidden);
		if (h == PS_UNREAD) {
			/* bytes arrived on a connection nobody was using: a late tail
			 * of a response the program abandoned, or a server that talks
			 * unprompted.  Either way this destination is not safe to pool. */
			PS_LOG_INFO("idle connection received unsolicited bytes");
			ps_unsafe_add(&c->key);
		}
		if (h != PS_HEALTHY) {
			ps_stat_inc(PS_ST_STALE);
			log_decision("checkout", c, ps_health_name(h));
			c->free_next = NULL;
			ps_terminate(c);
			continue;
		}
		if (adopt(c, fresh, fd) < 0) {
			log_decision("checkout", c, "handover failed");
			c->free_next = NULL;
			ps_terminate(c);
			return 0;
		}
		ps_stat_inc(PS_ST_HITS);
		log_decision("checkout", c, "reused");
		*nonblock = c->nonblock;
		return 1;
	}
	return 0;
}

void ps_connected(struct ps_conn *c, uint32_t seq, int fd, const struct sockaddr *sa,
		  socklen_t len, int ret, int err)
{
	struct ps_key k;
	uint64_t cookie;
	unsigned taint = 0;
	/* EINTR: the handshake goes on in the background, as for EINPROGRESS */
	if (ret < 0 && err != EINPROGRESS && err != EINTR)
		return;
	if (build_key(c, sa, len, &k) < 0 || len > (socklen_t)sizeof c->dest)
		taint |= PS_T_UNTRACKABLE;
	if (ps_probe_cookie(fd, &cookie) < 0)
		taint |= PS_T_UNTRACKABLE;
	/* Under the lock, which frees and allocates records: c is still this
	 * incarnation at this fd, or it is left alone. */
	if (ps_lock() < 0)
		return;
	if (ps_fd_get(fd) == c && ps_conn_seq(c) == seq && ps_conn_state(c) == PS_FRESH) {
		if (!taint) {
			c->key = k;
			memcpy(&c->dest, sa, len);
			c->dest_len = len;
		}
		c->cookie = cookie;
		c->created_ns = ps_now_ns();
		ps_conn_add_taint(c, taint);
		ps_conn_set_state(c, PS_ACTIVE);
		ps_stat_inc(PS_ST_MISSES);
	}
	ps_unlock();
	if (!taint)
		ps_reaper_start();
}

static enum ps_stat refusal(struct ps_conn *c, uint64_t now)
{
	unsigned t = ps_conn_taint(c);
	if (c->generation != ps_g.generation || (t & PS_T_SHARED))
		return PS_ST_REFUSED_SHARED;
	if (t & PS_T_SERVER_FIRST)
		return PS_ST_REFUSED_SERVER_FIRST;
	if (t & PS_T_TLS)
		return PS_ST_REFUSED_TLS;
	if (t & PS_T_AUTH)
		return PS_ST_REFUSED_AUTH;
	if (t & PS_T_FILTER)
		return PS_ST_REFUSED_FILTER;
	if (t & PS_T_PEER_CLOSED)
		return PS_ST_REFUSED_PEER;
	if (t)
		return PS_ST_REFUSED_STATE;
	if (__atomic_load_n(&c->last_io, __ATOMIC_ACQUIRE) == PS_IO_WRITE)
		return PS_ST_REFUSED_WRITE;
	if (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) != 0)
		return PS_ST_REFUSED_STATE;
	if ((ps_config.max_reuse && c->reuse_count >= ps_config.max_reuse) ||
	    (ps_config.max_lifetime_ns && now - c->created_ns >= ps_config.max_lifetime_ns))
		return PS_ST_REFUSED_CAPS;
	return 0;
}

static int refuse(struct ps_conn *c, enum ps_stat why, int closed)
{
	ps_stat_inc(PS_ST_REFUSED);
	ps_stat_inc(why);
	if (ps_log_level >= PS_LOG_DEBUG) {
		char reason[96];
		snprintf(reason, sizeof reason, "%s (taint 0x%x, last io %d)", ps_stat_name(why),
			 ps_conn_taint(c), __atomic_load_n(&c->last_io, __ATOMIC_RELAXED));
		log_decision("checkin", c, reason);
	}
	ps_close_hidden(c);
	ps_conn_free(c);
	return closed;
}

/* The program closed the number of one of our hidden descriptors itself. */
static void forget_hidden(struct ps_conn *c)
{
	if (ps_lock() < 0)
		return; /* leave it: the next checkout proves its cookie */
	c->hidden = -1;
	if (ps_conn_state(c) == PS_IDLE && c->bucket) {
		ps_pool_remove(&ps_g.pool, c);
		ps_conn_free_locked(c);
	}
	ps_unlock();
}

/* Proves the program's fd (same socket, quiet, alive) and hides a copy of
 * it; returns 0, or why the connection is refused. */
static enum ps_stat hide(struct ps_conn *c, int fd)
{
	if (!ps_probe_same(fd, c->cookie)) {
		ps_stat_inc(PS_ST_IDENTITY);
		return PS_ST_REFUSED_STATE;
	}
	enum ps_health h = ps_probe_health(fd);
	if (h == PS_UNREAD) {
		/* the program closed in the middle of an answer: whatever is
		 * still on its way could reach the next user of any connection
		 * to this destination that is pooled too early */
		ps_unsafe_add(&c->key);
	}
	if (h != PS_HEALTHY)
		return h == PS_UNREAD ? PS_ST_REFUSED_PENDING : PS_ST_REFUSED_PEER;
	epoll_detach(c, fd);
	int hidden = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, ps_g.hidden_floor);
	if (hidden < 0 && errno == EINVAL) {
		/* the program lowered RLIMIT_NOFILE below the floor (httperf
		 * clamps it to FD_SETSIZE): place hidden fds under the new limit */
		ps_state_update_floor();
		hidden = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, ps_g.hidden_floor);
	}
	if (hidden < 0)
		return PS_ST_REFUSED_CAPS;
	struct ps_conn *old;
	if (ps_fd_swap(hidden, c, &old) < 0) {
		ps_sys.close(hidden);
		return PS_ST_REFUSED_CAPS;
	}
	ps_release_stale(old, hidden);
	c->hidden = hidden;
	return 0;
}

int ps_checkin(struct ps_conn *c, int fd)
{
	ps_check_fork();
	/* Claim the slot: from here no new I/O call can start tracking it. */
	if (!ps_fd_cas(fd, c, NULL))
		return 0;
	if (fd == c->hidden) {
		forget_hidden(c);
		return 0;
	}
	int st = ps_conn_state(c);
	if (st == PS_FRESH) {
		ps_conn_free(c);
		return 0;
	}
	if (st != PS_ACTIVE || fd != c->fd)
		return 0;
	uint64_t now = ps_now_ns();
	enum ps_stat why = refusal(c, now);
	if (!why)
		why = hide(c, fd);
	if (why)
		return refuse(c, why, 0);
	ps_sys.close(fd);
	/* A call that started before our claim may still be inside the kernel
	 * on this socket (a blocked recv): it must never see the next user. */
	if (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) != 0)
		return refuse(c, PS_ST_REFUSED_STATE, 1);
	c->fd = -1;
	c->last_used_ns = now;
	c->reused = false;
	ps_conn_set_state(c, PS_IDLE);
	if (ps_lock() < 0) {
		c->free_next = NULL;
		ps_terminate(c);
		return 1;
	}
	struct ps_conn *expired_list = ps_pool_reap(&ps_g.pool, now, ps_config.idle_timeout_ns);
	struct ps_conn *evicted = NULL;
	int r = ps_pool_put(&ps_g.pool, c, &evicted);
	ps_unlock();
	for (struct ps_conn *e = expired_list; e; e = e->free_next)
		ps_stat_inc(PS_ST_REAPED);
	for (struct ps_conn *e = evicted; e; e = e->free_next)
		ps_stat_inc(PS_ST_EVICTED);
	ps_terminate(expired_list);
	ps_terminate(evicted);
	if (r < 0) {
		c->free_next = NULL;
		ps_terminate(c);
		ps_stat_inc(PS_ST_REFUSED);
		ps_stat_inc(PS_ST_REFUSED_CAPS);
		return 1;
	}
	ps_stat_inc(PS_ST_CHECKINS);
	log_decision("checkin", c, "pooled");
	ps_reaper_kick();
	return 1;
}

void ps_reap_now(void)
{
	if (ps_lock() < 0)
		return;
	struct ps_conn *list = ps_pool_reap(&ps_g.pool, ps_now_ns(), ps_config.idle_timeout_ns);
	ps_unlock();
	for (struct ps_conn *e = list; e; e = e->free_next)
		ps_stat_inc(PS_ST_REAPED);
	ps_terminate(list);
}

/* What the program set on its socket before connect that shapes the
 * connection itself (the key's option part), applied to a new socket. */
static int apply_key_options(const struct ps_key *k, int s)
{
	int on = 1;
	if (k->mark && ps_sys.setsockopt(s, SOL_SOCKET, SO_MARK, &k->mark, sizeof k->mark) < 0)
		return -1;
	if (k->device[0] &&
	    ps_sys.setsockopt(s, SOL_SOCKET, SO_BINDTODEVICE, k->device, (socklen_t)strlen(k->device)) < 0)
		return -1;
	if (k->rcvbuf && ps_sys.setsockopt(s, SOL_SOCKET, SO_RCVBUF, &k->rcvbuf, sizeof k->rcvbuf) < 0)
		return -1;
	if (k->sndbuf && ps_sys.setsockopt(s, SOL_SOCKET, SO_SNDBUF, &k->sndbuf, sizeof k->sndbuf) < 0)
		return -1;
	if (k->v6only && ps_sys.setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0)
		return -1;
	if (k->local_family == AF_INET) {
		struct sockaddr_in in = { .sin_family = AF_INET };
		memcpy(&in.sin_addr, k->local_addr, 4);
		return ps_sys.bind(s, (struct sockaddr *)&in, sizeof in);
	}
	if (k->local_family == AF_INET6) {
		struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
		memcpy(&in6.sin6_addr, k->local_addr, 16);
		return ps_sys.bind(s, (struct sockaddr *)&in6, sizeof in6);
	}
	return 0;
}

int ps_reconnect(struct ps_conn *c, int fd)
{
	int saved = errno;
	int soerr = 0;
	socklen_t slen = sizeof soerr;
	uint64_t cookie;
	if (!c->dest_len)
		return -1;
	int s = ps_sys.socket(c->domain, c->type | SOCK_NONBLOCK | SOCK_CLOEXEC, c->protocol);
	if (s < 0)
		return -1;
	if (apply_key_options(&c->key, s) < 0)
		goto fail;
	for (int i = 0; i < c->n_opts; i++)
		if (ps_sys.setsockopt(s, c->opts[i].level, c->opts[i].name, c->opts[i].value,
				      c->opts[i].len) < 0)
			goto fail;
	if (ps_sys.connect(s, (struct sockaddr *)&c->dest, c->dest_len) < 0) {
		struct pollfd p = { .fd = s, .events = POLLOUT };
		/* bounded: a blocking program would have waited in connect() */
		if (errno != EINPROGRESS || ps_sys.poll(&p, 1, 10000) != 1 ||
		    ps_sys.getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0 || soerr)
			goto fail;
	}
	if ((!c->nonblock && ps_sys.fcntl(s, F_SETFL, 0) < 0) || ps_probe_cookie(s, &cookie) < 0 ||
	    ps_sys.dup3(s, fd, c->cloexec ? O_CLOEXEC : 0) < 0)
		goto fail;
	ps_sys.close(s);
	c->cookie = cookie;
	c->reused = false;
	c->reuse_count = 0;
	c->created_ns = ps_now_ns();
	struct ps_conn regs = { .n_epoll = c->n_epoll };
	memcpy(regs.epoll, c->epoll, sizeof regs.epoll);
	epoll_attach(c, &regs, fd);
	ps_stat_inc(PS_ST_STALE_RETRIES);
	log_decision("retry", c, "reconnected after a stale reuse");
	errno = saved;
	return 0;
fail:
	ps_sys.close(s);
	errno = saved;
	return -1;
}
