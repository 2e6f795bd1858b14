/* Owns the moves of a connection between the program and the pool, each
 * preceded by its proofs:
 *   checkin:  not tainted, last I/O a read, caps, no other thread inside a
 *             call on it; then, on the pool's own copy: same cookie, peek ==
 *             EAGAIN;
 *   checkout: not expired, same cookie, peek == EAGAIN.
 * The pool holds a connection on a hidden descriptor (an F_DUPFD_CLOEXEC
 * copy placed high), closed again as soon as checkout has put the connection
 * on the program's fd, so a close the shim cannot see (a raw syscall) never
 * leaves a connection open behind the program's back.
 * Pool lock: held only to take/put/reap; proofs and closes run without it. */
#include "handoff.h"
#include "clock.h"
#include "config.h"
#include "fdtable.h"
#include "libc.h"
#include "lifecycle.h"
#include "park.h"
#include "log.h"
#include "probe.h"
#include "ready.h"
#include "shared.h"
#include "state.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>

void ps_log_decision(const char *what, const struct ps_conn *c, const char *why)
{
	if (ps_log_level >= PS_LOG_DEBUG) {
		char dest[160];
		ps_key_format(&c->key, dest, sizeof dest);
		ps_log_write(PS_LOG_DEBUG, what, "fd %d (hidden %d) %s: %s", c->fd, c->hidden, dest,
			     why);
	}
}

bool ps_dest_allowed(const struct ps_key *k)
{
	if (k->family == AF_UNIX)
		return true;
	return ps_config_allows(&ps_config, k->family, k->addr, ntohs(k->port));
}

bool ps_conn_expired(const struct ps_conn *c, uint64_t now)
{
	return now - c->last_used_ns >= ps_config.idle_timeout_ns ||
	       (c->idle_limit_ns && now - c->last_used_ns >= c->idle_limit_ns) ||
	       (ps_config.max_lifetime_ns && now - c->created_ns >= ps_config.max_lifetime_ns) ||
	       (ps_config.max_reuse && c->reuse_count >= ps_config.max_reuse);
}

static const struct ps_opt *opt_in(const struct ps_conn *c, int level, int name)
{
	for (int i = 0; i < c->n_opts; i++)
		if (c->opts[i].level == level && c->opts[i].name == name)
			return &c->opts[i];
	return NULL;
}

static bool same_value(const uint8_t *a, uint8_t alen, const uint8_t *b, uint8_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

/* The previous user's options (on idle) go back to their defaults and the
 * new user's (set on its fresh socket, which dup3 replaces) are applied,
 * each with a syscall only when the pooled socket's value differs. */
static int carry_options(int s, const struct ps_conn *idle, const struct ps_conn *c)
{
	for (int i = 0; i < idle->n_opts; i++) {
		const struct ps_opt *o = &idle->opts[i];
		if (opt_in(c, o->level, o->name) || same_value(o->value, o->len, o->default_value, o->default_len))
			continue;
		if (ps_sys.setsockopt(s, o->level, o->name, o->default_value, o->default_len) < 0)
			return -1;
	}
	for (int j = 0; j < c->n_opts; j++) {
		const struct ps_opt *o = &c->opts[j];
		const struct ps_opt *had = opt_in(idle, o->level, o->name);
		bool already = had ? same_value(had->value, had->len, o->value, o->len)
				   : same_value(o->default_value, o->default_len, o->value, o->len);
		if (!already && ps_sys.setsockopt(s, o->level, o->name, o->value, o->len) < 0)
			return -1;
	}
	return 0;
}

/* Registrations belong to (socket, fd number) pairs: see conn.h. */
void ps_epoll_detach(struct ps_conn *c, int fd)
{
	for (int i = 0; i < c->n_epoll; i++)
		ps_sys.epoll_ctl(c->epoll[i].epfd, EPOLL_CTL_DEL, fd, NULL);
}

void ps_epoll_attach(struct ps_conn *c, int fd)
{
	for (int i = 0; i < c->n_epoll; i++)
		ps_sys.epoll_ctl(c->epoll[i].epfd, EPOLL_CTL_ADD, fd, &c->epoll[i].ev);
}

/* What a new use of a connection starts from. */
void ps_begin_use(struct ps_conn *c, bool reused)
{
	c->reused = reused;
	c->checkout_ns = ps_now_ns();
	ps_proto_init(&c->proto, ps_config.protocols);
	c->sent_before_use = c->sent;
	__atomic_store_n(&c->wrote, false, __ATOMIC_RELAXED);
	c->got_data = false;
	c->retried = false;
	c->nodelay_pushed = false;
	c->replay_overflow = false;
	c->replay_len = 0;
	__atomic_store_n(&c->last_io, PS_IO_NONE, __ATOMIC_RELAXED);
}

/* Puts the idle connection in place of the program's fresh socket at fd;
 * c, the program's record, takes over its description and idle ends. */
static int adopt(struct ps_conn *idle, struct ps_conn *c, int fd)
{
	if (idle->nonblock != c->nonblock &&
	    ps_sys.fcntl(idle->hidden, F_SETFL, c->nonblock ? O_NONBLOCK : 0) < 0)
		return -1;
	if (carry_options(idle->hidden, idle, c) < 0)
		return -1;
	if (ps_sys.dup3(idle->hidden, fd, c->cloexec ? O_CLOEXEC : 0) < 0)
		return -1;
	/* the program replaced the hidden number meanwhile (dup2 onto it):
	 * what we copied may not be ours */
	if (ps_life_hidden_closed(idle) && !ps_probe_same(fd, idle->cookie))
		return -1;
	int hidden = idle->hidden;
	idle->hidden = -1;
	ps_fd_cas(hidden, idle, NULL);
	ps_sys.close(hidden);
	c->cookie = idle->cookie;
	c->created_ns = idle->created_ns;
	c->reuse_count = idle->reuse_count + 1;
	c->sent = idle->sent;
	c->dest = idle->dest;
	c->dest_len = idle->dest_len;
	ps_begin_use(c, true);
	ps_epoll_attach(c, fd);
	ps_life_end(idle);
	ps_unused_add(c);
	return 0;
}

int ps_checkout(struct ps_conn *c, int fd)
{
	ps_check_fork();
	ps_stat_inc(PS_ST_CONNECTS);
	if (c->generation != ps_g.generation)
		ps_conn_add_taint(c, PS_T_SHARED); /* inherited across fork */
	if (ps_conn_taint(c))
		return 0;
	if (!ps_dest_allowed(&c->key)) {
		ps_conn_add_taint(c, PS_T_FILTER);
		return 0;
	}
	bool asked_keeper = false;
	/* bounded: every pass removes one idle connection of this key */
	for (unsigned tries = 0; tries <= ps_config.max_idle_per_host; tries++) {
		if (ps_lock() < 0)
			return 0;
		if (ps_unsafe_has_locked(&c->key)) {
			ps_unlock();
			ps_conn_add_taint(c, PS_T_FILTER);
			return 0;
		}
		struct ps_conn *idle = ps_pool_take(&ps_g.pool, &c->key);
		if (idle)
			ps_life_take(idle);
		ps_unlock();
		if (!idle && !asked_keeper) {
			/* shared.h: once per connect, the keeper's connection for this
			 * key, as a TAKEN record that meets the same proofs below */
			asked_keeper = true;
			idle = ps_shared_checkout(c);
		}
		if (!idle)
			return 0;
		/* read the clock after the take: another thread may have pooled it
		 * after any earlier reading, and the ages below are unsigned */
		if (ps_life_hidden_closed(idle) || ps_conn_expired(idle, ps_now_ns())) {
			ps_stat_inc(PS_ST_REAPED);
			ps_log_decision("checkout", idle, "expired");
			ps_life_end(idle);
			continue;
		}
		if (!ps_probe_same(idle->hidden, idle->cookie)) {
			/* the hidden fd was closed behind our back: not ours to close */
			ps_stat_inc(PS_ST_IDENTITY);
			ps_log_decision("checkout", idle, "identity changed");
			ps_fd_cas(idle->hidden, idle, NULL);
			idle->hidden = -1;
			ps_life_end(idle);
			continue;
		}
		enum ps_health h = ps_probe_health(idle->hidden);
		if (h == PS_UNREAD) {
			/* bytes arrived on a connection nobody was using: a late tail
			 * of a response the program abandoned, or a server that talks
			 * unprompted.  Either way this destination is not safe to pool. */
			PS_LOG_INFO("idle connection received unsolicited bytes");
			ps_unsafe_add(&idle->key);
		}
		if (h != PS_HEALTHY) {
			ps_stat_inc(PS_ST_STALE);
			ps_log_decision("checkout", idle, ps_health_name(h));
			ps_life_end(idle);
			continue;
		}
		if (adopt(idle, c, fd) < 0) {
			ps_log_decision("checkout", idle, "handover failed");
			ps_life_end(idle);
			return 0;
		}
		ps_stat_inc(PS_ST_HITS);
		ps_log_decision("checkout", c, "reused");
		return 1;
	}
	return 0;
}

/* The protocol tracker's reasons, as the counters name them. */
static enum ps_stat protocol_refusal(enum ps_proto_reason r)
{
	switch (r) {
	case PS_R_NONE:
		return 0;
	case PS_R_NO_EXCHANGE:
		return PS_ST_REFUSED_NO_EXCHANGE;
	case PS_R_REQUEST_PARTIAL:
	case PS_R_RESPONSE_PENDING:
	case PS_R_REDIS_MULTI:
		return PS_ST_REFUSED_INCOMPLETE;
	case PS_R_LAST_WRITE:
		return PS_ST_REFUSED_WRITE;
	case PS_R_SERVER_FIRST:
		return PS_ST_REFUSED_SERVER_FIRST;
	case PS_R_UNSOLICITED:
		return PS_ST_REFUSED_PENDING;
	case PS_R_UNSEEN:
		return PS_ST_REFUSED_UNSEEN;
	case PS_R_TLS:
		return PS_ST_REFUSED_TLS;
	case PS_R_HTTP_AUTH:
		return PS_ST_REFUSED_AUTH;
	case PS_R_HTTP_CLIENT_CLOSE:
		return PS_ST_REFUSED_CLIENT_CLOSE;
	case PS_R_HTTP_SERVER_CLOSE:
	case PS_R_HTTP_10:
	case PS_R_HTTP_EOF_BODY:
	case PS_R_HTTP_KEEPALIVE_0:
		return PS_ST_REFUSED_SERVER_CLOSE;
	case PS_R_HTTP_UPGRADE:
	case PS_R_HTTP_CONNECT:
	case PS_R_REDIS_SELECT:
	case PS_R_REDIS_AUTH:
	case PS_R_REDIS_HELLO:
	case PS_R_REDIS_CLIENT:
	case PS_R_REDIS_WATCH:
	case PS_R_REDIS_SUBSCRIBE:
	case PS_R_REDIS_MONITOR:
	case PS_R_REDIS_READONLY:
	case PS_R_REDIS_QUIT:
	case PS_R_REDIS_REPLICATION:
	case PS_R_MC_QUIT:
		return PS_ST_REFUSED_SESSION;
	default:
		return PS_ST_REFUSED_PROTOCOL; /* unrecognised, disabled, or not framed */
	}
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
	if (t & PS_T_SAME_PROCESS)
		return PS_ST_REFUSED_SAME_PROCESS;
	if (t & PS_T_FILTER)
		return PS_ST_REFUSED_FILTER;
	if (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) != 0)
		return PS_ST_REFUSED_STATE;
	/* the tracker's word before a read of 0: a server that announced its
	 * close says more than the FIN that followed */
	enum ps_stat why = protocol_refusal(ps_proto_reason(&c->proto));
	if (why)
		return why;
	if (t & PS_T_PEER_CLOSED)
		return PS_ST_REFUSED_PEER;
	if (t)
		return PS_ST_REFUSED_STATE;
	if (__atomic_load_n(&c->last_io, __ATOMIC_ACQUIRE) == PS_IO_WRITE)
		return PS_ST_REFUSED_WRITE;
	if ((ps_config.max_reuse && c->reuse_count >= ps_config.max_reuse) ||
	    (ps_config.max_lifetime_ns && now - c->created_ns >= ps_config.max_lifetime_ns))
		return PS_ST_REFUSED_CAPS;
	return 0;
}

static void count_refusal(struct ps_conn *c, enum ps_stat why)
{
	ps_stat_inc(PS_ST_REFUSED);
	ps_stat_inc(why);
	if (ps_log_level >= PS_LOG_DEBUG) {
		const char *label = ps_stat_label(why);
		char reason[256];
		snprintf(reason, sizeof reason, "not pooled: %s", label ? label : ps_stat_name(why));
		ps_log_decision("checkin", c, reason);
	}
}

/* Makes the pool's own copy of the program's fd and proves it: the copy is
 * ours whatever the program's number holds now, so the proofs run on it.
 * Returns 0, or why the connection is refused (c->hidden then set or not;
 * ps_life_end closes it). */
enum ps_copy ps_hidden_copy(struct ps_conn *c, int fd, uint64_t cookie)
{
	int hidden = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, ps_g.hidden_floor);
	if (hidden < 0 && errno == EINVAL) {
		/* the program lowered RLIMIT_NOFILE below the floor (httperf
		 * clamps it to FD_SETSIZE): place hidden fds under the new limit */
		ps_state_update_floor();
		hidden = ps_sys.fcntl(fd, F_DUPFD_CLOEXEC, ps_g.hidden_floor);
	}
	if (hidden < 0)
		return PS_COPY_NONE;
	struct ps_conn *old;
	if (ps_fd_swap(hidden, c, &old) < 0) {
		ps_sys.close(hidden);
		return PS_COPY_NONE;
	}
	ps_release_stale(old, hidden);
	if (!ps_probe_same(hidden, cookie)) {
		/* the number holds something else: our copy is of that, close it */
		ps_stat_inc(PS_ST_IDENTITY);
		ps_fd_cas(hidden, c, NULL);
		ps_sys.close(hidden);
		return PS_COPY_NOT_OURS;
	}
	c->hidden = hidden;
	return PS_COPY_OK;
}

static enum ps_stat hide(struct ps_conn *c, int fd)
{
	ps_epoll_detach(c, fd);
	enum ps_copy copy = ps_hidden_copy(c, fd, c->cookie);
	if (copy != PS_COPY_OK)
		return copy == PS_COPY_NONE ? PS_ST_REFUSED_CAPS : PS_ST_REFUSED_STATE;
	int hidden = c->hidden;
	int off = 0;
	if (c->nodelay_pushed &&
	    ps_sys.setsockopt(hidden, IPPROTO_TCP, TCP_NODELAY, &off, sizeof off) < 0)
		return PS_ST_REFUSED_STATE; /* io.c's push of a split request cannot be undone */
	enum ps_health h = ps_probe_health(hidden);
	if (h == PS_UNREAD) {
		/* the program closed in the middle of an answer: whatever is
		 * still on its way could reach the next user of any connection
		 * to this destination that is pooled too early */
		ps_unsafe_add(&c->key);
	}
	if (h != PS_HEALTHY)
		return h == PS_UNREAD ? PS_ST_REFUSED_PENDING : PS_ST_REFUSED_PEER;
	return 0;
}

static int refuse(struct ps_conn *c, int fd, enum ps_stat why)
{
	count_refusal(c, why);
	__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
	ps_life_end(c);
	return ps_libc.close(fd);
}

/* The server closes a connection idle for its Keep-Alive timeout: keep it
 * for less, with a margin for the two clocks and the request in flight
 * (a fifth of it, at least half a second). */
static uint64_t keepalive_limit(uint32_t ms)
{
	if (!ms)
		return 0;
	uint64_t ns = (uint64_t)ms * 1000000;
	uint64_t margin = ns / 5 > 500000000ull ? ns / 5 : 500000000ull;
	return ns > margin ? ns - margin : 1;
}

int ps_checkin(struct ps_conn *c, int fd)
{
	ps_check_fork();
	ps_unused_remove(c);
	uint64_t now = ps_now_ns();
	enum ps_stat why = refusal(c, now);
	if (!why) {
		/* atomic: the reaper's walk of parked numbers reads them (park.c) */
		__atomic_store_n(&c->last_used_ns, now, __ATOMIC_RELAXED);
		__atomic_store_n(&c->idle_limit_ns, keepalive_limit(ps_proto_keepalive_ms(&c->proto)),
				 __ATOMIC_RELAXED);
		c->reused = false;
		if (ps_park(c, fd))
			return 0; /* park.h: it stays on fd, which now looks closed */
	}
	/* from here no new I/O call can start tracking it */
	ps_fd_cas(fd, c, NULL);
	if (!why)
		why = hide(c, fd);
	if (why)
		return refuse(c, fd, why);
	ps_sys.close(fd);
	__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
	/* A call that started before our claim may still be inside the kernel
	 * on this socket (a blocked recv): it must never see the next user. */
	if (__atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST) != 0) {
		count_refusal(c, PS_ST_REFUSED_STATE);
		ps_life_end(c);
		return 0;
	}
	ps_pool_keep(c, now, 0);
	return 0;
}

/* Room for `reserve` connections of c's key kept outside the pool (the
 * thread's parked one, park.h) and for every parked one in the total: the
 * caps count them too.  Returns false when c itself has no room. */
static bool make_room_locked(struct ps_conn *c, unsigned reserve, struct ps_conn **evicted)
{
	unsigned parked = (unsigned)__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED);
	if (reserve >= ps_g.pool.max_per_key || parked >= ps_g.pool.max_total)
		return false;
	struct ps_conn *e;
	while (ps_pool_key_count(&ps_g.pool, &c->key) + reserve >= ps_g.pool.max_per_key &&
	       (e = ps_pool_evict_oldest_of(&ps_g.pool, &c->key))) {
		e->free_next = *evicted;
		*evicted = e;
	}
	while (ps_g.pool.total + parked >= ps_g.pool.max_total && (e = ps_pool_evict_lru(&ps_g.pool))) {
		e->free_next = *evicted;
		*evicted = e;
	}
	return true;
}

void ps_pool_keep(struct ps_conn *c, uint64_t now, unsigned reserve)
{
	ps_replay_free(c->replay);
	c->replay = NULL;
	if (ps_lock() < 0) {
		ps_life_end(c);
		return;
	}
	struct ps_conn *expired_list = ps_pool_reap(&ps_g.pool, now, ps_config.idle_timeout_ns);
	struct ps_conn *evicted = NULL, *more = NULL;
	int r = -1;
	bool was_checkin = ps_conn_state(c) == PS_CHECKIN;
	if (make_room_locked(c, reserve, &more) && (ps_life_pool(c) || ps_life_pool_taken(c))) {
		r = ps_pool_put(&ps_g.pool, c, &evicted);
		if (r < 0)
			ps_life_take(c);
	}
	while (more) {
		struct ps_conn *e = more;
		more = e->free_next;
		e->free_next = evicted;
		evicted = e;
	}
	ps_take_list_locked(expired_list);
	ps_take_list_locked(evicted);
	ps_unlock();
	for (struct ps_conn *e = expired_list; e; e = e->free_next)
		ps_stat_inc(PS_ST_REAPED);
	for (struct ps_conn *e = evicted; e; e = e->free_next)
		ps_stat_inc(PS_ST_EVICTED);
	ps_terminate(expired_list);
	ps_shared_offer(evicted); /* shared.h: to the keeper, or closed */
	if (r < 0) {
		if (was_checkin)
			count_refusal(c, PS_ST_REFUSED_CAPS);
		else
			ps_stat_inc(PS_ST_EVICTED); /* moved from elsewhere, and no room */
		ps_life_end(c);
		return;
	}
	if (was_checkin) {
		ps_stat_inc(PS_ST_CHECKINS);
		ps_log_decision("checkin", c, "pooled");
	}
	ps_reaper_kick();
}

void ps_reap_now(void)
{
	if (ps_lock() < 0)
		return;
	struct ps_conn *list = ps_pool_reap(&ps_g.pool, ps_now_ns(), ps_config.idle_timeout_ns);
	ps_take_list_locked(list);
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

/* Waits until s can take more (events POLLOUT) or the deadline passes. */
static int wait_until(int s, uint64_t deadline_ns)
{
	uint64_t now = ps_now_ns();
	if (now >= deadline_ns)
		return -1;
	uint64_t left_ms = (deadline_ns - now + 999999) / 1000000;
	struct pollfd p = { .fd = s, .events = POLLOUT };
	return ps_sys.poll(&p, 1, left_ms > 60000 ? 60000 : (int)left_ms) == 1 ? 0 : -1;
}

static int send_all(int s, const uint8_t *b, size_t len, uint64_t deadline_ns)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = ps_sys.send(s, b + off, len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EAGAIN) {
			if (wait_until(s, deadline_ns) < 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int ps_reconnect(struct ps_conn *c, int fd, uint64_t deadline_ns, const void *replay, size_t len)
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
		if (errno != EINPROGRESS)
			goto fail;
		if (deadline_ns &&
		    (wait_until(s, deadline_ns) < 0 ||
		     ps_sys.getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &slen) < 0 || soerr))
			goto fail;
	}
	if ((len && send_all(s, replay, len, deadline_ns) < 0) ||
	    (!c->nonblock && ps_sys.fcntl(s, F_SETFL, 0) < 0) || ps_probe_cookie(s, &cookie) < 0)
		goto fail;
	/* the number must still hold our socket: never dup3 over what the
	 * program put there (a raw close the shim could not see) */
	if (!ps_probe_same(fd, c->cookie) || ps_sys.dup3(s, fd, c->cloexec ? O_CLOEXEC : 0) < 0)
		goto fail;
	ps_sys.close(s);
	c->cookie = cookie;
	c->reuse_count = 0;
	c->created_ns = ps_now_ns();
	c->sent = len;
	c->sent_before_use = 0;
	c->reused = false;
	ps_epoll_attach(c, fd);
	ps_stat_inc(PS_ST_STALE_RETRIES);
	ps_log_decision("retry", c, "reconnected after a stale reuse");
	errno = saved;
	return 0;
fail:
	ps_sys.close(s);
	errno = saved;
	return -1;
}
