/* Owns parking (park.h): the thread slots, ps_parked_count, and the moves
 * of a parked or warm connection.  Lock-free on the hit path: a record is
 * taken with a CAS on its state word (lifecycle.h), the slot is the
 * thread's own, and the pool lock is taken only when a connection leaves
 * for the pool or a record is freed. */
#include "park.h"
#include "clock.h"
#include "config.h"
#include "fdtable.h"
#include "handoff.h"
#include "lifecycle.h"
#include "listeners.h"
#include "probe.h"
#include "ready.h"
#include "state.h"
#include "stats.h"
#include "sys.h"
#include "track.h"
#include "events.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

int ps_parked_count;

/* The thread's last parked connection, and which incarnation it was.
 * registered: the thread has a key destructor (thread_gone), so what it
 * parked goes to the pool when it exits, for the threads that remain. */
static __thread struct {
	struct ps_conn *c;
	uint32_t seq;
	bool registered;
	uint8_t mismatches; /* warm connects in a row to another destination */
	uint16_t cooldown;  /* closes left that take the pool's path instead */
} slot __attribute__((tls_model("initial-exec")));

/* A thread that alternates destinations would settle its warm socket at
 * every connect (a hidden copy, a fresh socket, then the pool's own
 * checkout): after MISMATCHES_BEFORE_COOLDOWN such connects in a row it
 * leaves parking alone for COOLDOWN_CLOSES closes, and the pool serves it. */
#define MISMATCHES_BEFORE_COOLDOWN 2
#define COOLDOWN_CLOSES 64

static pthread_key_t thread_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_made;

/* Read by the reaper's walk while the owner may be taking the record:
 * relaxed atomics, and the walk acts only after its own CAS. */
static uint64_t expiry(const struct ps_conn *c)
{
	uint64_t t = ps_config.idle_timeout_ns;
	uint64_t limit = __atomic_load_n(&c->idle_limit_ns, __ATOMIC_RELAXED);
	if (limit && limit < t)
		t = limit;
	return __atomic_load_n(&c->last_used_ns, __ATOMIC_RELAXED) + t;
}

static void count(int d) { __atomic_add_fetch(&ps_parked_count, d, __ATOMIC_RELAXED); }

/* Ends a parked connection someone took (TAKEN), closing its number when
 * it still holds the connection. */
static void close_parked(struct ps_conn *c)
{
	int n = c->fd;
	ps_fd_cas(n, c, NULL);
	if (ps_probe_same(n, c->cookie))
		ps_sys.close(n);
	else
		ps_stat_inc(PS_ST_IDENTITY);
	__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
	ps_life_end(c);
}

/* Ends a record whose number is no longer its own (closed behind the
 * shim's back and reused, or being replaced by the program's call). */
static void drop(struct ps_conn *c)
{
	ps_fd_cas(c->fd, c, NULL);
	__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
	ps_life_end(c);
}

/* A parked connection taken from a slot (TAKEN) goes to the pool on a
 * hidden descriptor, and its number is closed.  reserve: connections of
 * its key still parked beside it (the caps count them). */
static void demote(struct ps_conn *c, unsigned reserve)
{
	int n = c->fd;
	switch (ps_hidden_copy(c, n, c->cookie)) {
	case PS_COPY_NONE:
		close_parked(c);
		return;
	case PS_COPY_NOT_OURS:
		drop(c); /* n is not ours: leave it */
		return;
	case PS_COPY_OK:
		break;
	}
	ps_fd_cas(n, c, NULL);
	__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
	ps_sys.close(n);
	ps_pool_keep(c, ps_now_ns(), reserve);
}

static void thread_gone(void *unused)
{
	(void)unused;
	struct ps_conn *c = slot.c;
	slot.c = NULL;
	if (c && ps_conn_seq(c) == slot.seq && ps_life_unpark(c)) {
		count(-1);
		demote(c, 0);
	}
}

static void make_key(void) { key_made = pthread_key_create(&thread_key, thread_gone) == 0; }

void ps_park_thread_start(void)
{
	if (__builtin_expect(slot.registered, 1))
		return;
	pthread_once(&key_once, make_key);
	/* a non-NULL value makes the destructor run at the thread's exit */
	slot.registered = key_made && pthread_setspecific(thread_key, (void *)1) == 0;
}

bool ps_park(struct ps_conn *c, int fd)
{
	/* a thread that never called socket() (it closes what others made)
	 * has no destructor: its connections go to the pool, where all can
	 * reach them */
	if (!ps_config.park || fd <= 2 || !slot.registered ||
	    __atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) >= (int)ps_config.max_idle)
		return false;
	if (slot.cooldown) {
		slot.cooldown--;
		return false;
	}
	/* the number must still hold the connection: closed behind the
	 * shim's back and reused (a file), the program's close is for real */
	if (!ps_probe_same(fd, c->cookie))
		return false;
	int off = 0;
	if (c->nodelay_pushed &&
	    ps_sys.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &off, sizeof off) < 0)
		return false; /* io.c's push of a split request must not outlive it */
	c->nodelay_pushed = false;
	/* a closed descriptor's registrations die with it: these must too */
	ps_epoll_detach(c, fd);
	c->n_epoll = 0;
	uint32_t seq = ps_conn_seq(c);
	if (!ps_life_park(c))
		return false;
	count(1);
	struct ps_conn *prev = slot.c;
	uint32_t prev_seq = slot.seq;
	slot.c = c;
	slot.seq = seq;
	ps_stat_inc(PS_ST_CHECKINS);
	ps_stat_inc(PS_ST_PARKED);
	ps_log_decision("checkin", c, "pooled, parked on its number");
	if (prev && ps_conn_seq(prev) == prev_seq && ps_life_unpark(prev)) {
		count(-1);
		demote(prev, ps_key_equal(&prev->key, &c->key) ? 1 : 0);
	}
	ps_reaper_kick_parked(expiry(c));
	return true;
}

static bool same_kind(const struct ps_conn *c, int domain, int type, int protocol)
{
	return c->domain == domain && c->type == (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) &&
	       c->protocol == protocol;
}

int ps_park_reissue(int domain, int type, int protocol)
{
	struct ps_conn *c = slot.c;
	uint32_t seq = slot.seq;
	if (!c)
		return -1;
	if (ps_conn_seq(c) != seq) {
		slot.c = NULL;
		return -1;
	}
	if (!same_kind(c, domain, type, protocol))
		return -1; /* stays parked for a socket of its own kind */
	slot.c = NULL;
	if (!ps_life_unpark(c))
		return -1; /* the reaper, or a call replacing the number, has it */
	if (ps_conn_seq(c) != seq || !same_kind(c, domain, type, protocol)) {
		ps_life_repark(c); /* another incarnation, parked by another thread */
		return -1;
	}
	count(-1);
	int fd = c->fd;
	int saved = errno;
	if (c->generation != ps_g.generation || ps_conn_expired(c, ps_now_ns())) {
		ps_stat_inc(PS_ST_REAPED);
		close_parked(c);
		errno = saved;
		return -1;
	}
	/* the one proof a reissue needs: the number still holds our socket
	 * (a raw close the shim could not see would have let it go) */
	if (!ps_probe_same(fd, c->cookie)) {
		ps_stat_inc(PS_ST_IDENTITY);
		drop(c);
		errno = saved;
		return -1;
	}
	bool nonblock = (type & SOCK_NONBLOCK) != 0, cloexec = (type & SOCK_CLOEXEC) != 0;
	if ((nonblock != c->nonblock && ps_sys.fcntl(fd, F_SETFL, nonblock ? O_NONBLOCK : 0) < 0) ||
	    ((cloexec != c->cloexec || __atomic_load_n(&c->cloexec_unknown, __ATOMIC_RELAXED)) &&
	     ps_sys.fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) < 0)) {
		close_parked(c);
		errno = saved;
		return -1;
	}
	c->nonblock = nonblock;
	c->cloexec = cloexec;
	__atomic_store_n(&c->cloexec_unknown, false, __ATOMIC_RELAXED);
	for (int i = 0; i < c->n_opts; i++)
		c->opts[i].this_use = 0;
	ps_life_warm(c);
	errno = saved;
	return fd;
}

/* The last user's options that this one did not set go back to their
 * defaults, each with a syscall only when its value differs; this user's
 * are on the socket already (the program set them on it). */
static int reset_last_users_options(struct ps_conn *c, int fd)
{
	for (int i = 0; i < c->n_opts; i++) {
		const struct ps_opt *o = &c->opts[i];
		if (!o->this_use && (o->len != o->default_len || memcmp(o->value, o->default_value, o->len)) &&
		    ps_sys.setsockopt(fd, o->level, o->name, o->default_value, o->default_len) < 0)
			return -1;
	}
	return 0;
}

/* Only this user's options stay recorded: the last user's are at their
 * defaults now (reset, or a fresh socket never had them). */
static void forget_last_users_options(struct ps_conn *c)
{
	int kept = 0;
	for (int i = 0; i < c->n_opts; i++)
		if (c->opts[i].this_use)
			c->opts[kept++] = c->opts[i];
	c->n_opts = kept;
}

/* The warm connection as a pool record of its own, on a hidden copy. */
static void stash(const struct ps_conn *c, int fd)
{
	struct ps_conn *idle = ps_life_received(-1); /* a TAKEN record, as one from the keeper */
	if (!idle)
		return;
	idle->domain = c->domain;
	idle->type = c->type;
	idle->protocol = c->protocol;
	idle->cookie = c->cookie;
	idle->key = c->key;
	idle->dest = c->dest;
	idle->dest_len = c->dest_len;
	idle->nonblock = c->nonblock;
	idle->created_ns = c->created_ns;
	idle->last_used_ns = c->last_used_ns;
	idle->idle_limit_ns = c->idle_limit_ns;
	idle->reuse_count = c->reuse_count;
	idle->sent = c->sent;
	idle->n_opts = c->n_opts;
	memcpy(idle->opts, c->opts, sizeof c->opts[0] * (size_t)c->n_opts);
	if (ps_hidden_copy(idle, fd, c->cookie) != PS_COPY_OK) {
		ps_life_end(idle);
		return;
	}
	ps_pool_keep(idle, ps_now_ns(), 0);
}

/* c is CHECKOUT (from WARM) at fd: the warm connection leaves the number
 * (to the pool when keep), and a real fresh socket with this user's
 * options and flags takes its place.  c is then a FRESH record's content. */
static int settle(struct ps_conn *c, int fd, bool keep)
{
	int flags = SOCK_CLOEXEC | (c->nonblock ? SOCK_NONBLOCK : 0);
	int s = ps_sys.socket(c->domain, c->type | flags, c->protocol);
	if (s < 0 && ps_fd_pressure(errno))
		s = ps_sys.socket(c->domain, c->type | flags, c->protocol);
	for (int i = 0; s >= 0 && i < c->n_opts; i++) {
		const struct ps_opt *o = &c->opts[i];
		if (o->this_use && ps_sys.setsockopt(s, o->level, o->name, o->value, o->len) < 0) {
			ps_sys.close(s);
			s = -1;
		}
	}
	if (s >= 0 && keep && !ps_conn_taint(c) && c->generation == ps_g.generation)
		stash(c, fd);
	ps_epoll_detach(c, fd);
	int r = 0;
	if (s >= 0) {
		r = ps_sys.dup3(s, fd, c->cloexec ? O_CLOEXEC : 0);
		ps_sys.close(s);
	} else {
		r = -1;
	}
	if (r < 0) {
		/* no fresh socket can be had (descriptor limit): the number must
		 * not keep a connected socket the program believes fresh */
		int err = errno;
		ps_sys.close(fd);
		s = ps_sys.socket(c->domain, c->type | flags, c->protocol);
		if (s >= 0 && s != fd) {
			ps_sys.close(s);
			s = -1;
		}
		if (s < 0) {
			ps_fd_cas(fd, c, NULL);
			errno = err;
			return -1;
		}
		if (!c->cloexec)
			ps_sys.fcntl(fd, F_SETFD, 0);
	}
	ps_epoll_attach(c, fd);
	forget_last_users_options(c);
	memset(&c->key, 0, sizeof c->key);
	c->cookie = 0;
	c->dest_len = 0;
	c->reuse_count = 0;
	c->sent = 0;
	c->reused = false;
	ps_stat_inc(PS_ST_SETTLED);
	return 0;
}

/* Ends a settle or a warm connect begun with ps_life_begin_settle: a close
 * the program made meanwhile is made now. */
static int end_settle(struct ps_conn *c, int fd, bool hit, int r)
{
	if (ps_life_end_checkout(c, hit)) {
		ps_close(fd);
		if (!hit) {
			errno = EBADF;
			return -1;
		}
	}
	return r;
}

static int settle_now(struct ps_conn *c, int fd, bool keep)
{
	int r = settle(c, fd, keep);
	if (r < 0) {
		/* the number is closed and forgotten: the program's next call
		 * finds it so */
		int err = errno;
		__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
		ps_life_end_checkout(c, false);
		ps_life_end(c);
		errno = err;
		return -1;
	}
	return end_settle(c, fd, false, 0);
}

int ps_warm_connect(struct ps_conn *c, int fd, const struct sockaddr *sa, socklen_t len)
{
	struct ps_key k;
	bool same = sa && len <= (socklen_t)sizeof c->dest &&
		    ps_key_init(&k, c->type, c->protocol, sa, len) == 0 && ps_key_equal(&k, &c->key);
	if (!ps_life_begin_settle(c)) {
		errno = EBADF; /* closed by another thread meanwhile */
		return -1;
	}
	bool keep = !same;
	if (same) {
		slot.mismatches = 0;
	} else if (++slot.mismatches >= MISMATCHES_BEFORE_COOLDOWN) {
		slot.mismatches = 0;
		slot.cooldown = COOLDOWN_CLOSES;
	}
	if (same && !ps_conn_taint(c) && c->generation == ps_g.generation && ps_dest_allowed(&k) &&
	    !ps_unsafe_has(&k) && !ps_listens_on(&k) && !ps_conn_expired(c, ps_now_ns())) {
		enum ps_health h = ps_probe_health(fd);
		if (h == PS_HEALTHY && reset_last_users_options(c, fd) == 0) {
			forget_last_users_options(c);
			memcpy(&c->dest, sa, len);
			c->dest_len = len;
			c->reuse_count++;
			ps_begin_use(c, true);
			ps_unused_add(c);
			ps_stat_inc(PS_ST_CONNECTS);
			ps_stat_inc(PS_ST_HITS);
			ps_log_decision("checkout", c, "reused where it was parked");
			return end_settle(c, fd, true, 1);
		}
		if (h == PS_UNREAD)
			ps_unsafe_add(&c->key); /* bytes nobody asked for: as at checkout */
		ps_stat_inc(PS_ST_STALE);
		ps_log_decision("checkout", c, ps_health_name(h));
	}
	return settle_now(c, fd, keep); /* the connect is counted where it goes on */
}

int ps_park_gate(struct ps_conn *c, int fd, bool settle_warm)
{
	if (__atomic_load_n(&c->fd, __ATOMIC_RELAXED) != fd)
		return 0;
	switch (ps_conn_state(c)) {
	case PS_PARKED:
	case PS_TAKEN:
	case PS_CHECKIN:
		errno = EBADF; /* the program closed it, or is closing it */
		return -1;
	case PS_WARM:
		if (!settle_warm || !ps_life_begin_settle(c))
			return 0;
		int saved = errno;
		if (settle_now(c, fd, true) < 0)
			return -1;
		errno = saved;
		return 0;
	default:
		return 0;
	}
}

struct reap_walk {
	uint64_t now, next;
	bool evict_one, done;
};

static void reap_one(int fd, struct ps_conn *c, void *arg)
{
	struct reap_walk *w = arg;
	if (w->done || fd != __atomic_load_n(&c->fd, __ATOMIC_RELAXED) || ps_conn_state(c) != PS_PARKED)
		return;
	if (!w->evict_one && expiry(c) > w->now) {
		if (expiry(c) < w->next)
			w->next = expiry(c);
		return;
	}
	if (!ps_life_unpark(c))
		return;
	count(-1);
	ps_stat_inc(w->evict_one ? PS_ST_EVICTED : PS_ST_REAPED);
	close_parked(c);
	w->done = w->evict_one;
}

uint64_t ps_park_reap(uint64_t now)
{
	struct reap_walk w = { .now = now, .next = UINT64_MAX };
	if (__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) > 0)
		ps_fd_foreach(reap_one, &w);
	return w.next;
}

bool ps_park_evict_one(void)
{
	struct reap_walk w = { .now = ps_now_ns(), .next = UINT64_MAX, .evict_one = true };
	if (__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) > 0)
		ps_fd_foreach(reap_one, &w);
	return w.done;
}

static void cloexec_one(int fd, struct ps_conn *c, void *arg)
{
	(void)arg;
	if (fd != __atomic_load_n(&c->fd, __ATOMIC_RELAXED) || ps_conn_state(c) != PS_PARKED)
		return;
	/* only the descriptor flag and a hint: this may run in a vfork child,
	 * whose memory is the parent's */
	__atomic_store_n(&c->cloexec_unknown, true, __ATOMIC_RELAXED);
	ps_sys.fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void ps_park_before_exec(void)
{
	if (ps_g.ready && __atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) > 0) {
		int saved = errno;
		ps_fd_foreach(cloexec_one, NULL);
		errno = saved;
	}
}

bool ps_park_forget_in_child(int fd, struct ps_conn *c)
{
	int st = ps_conn_state(c);
	if (fd != c->fd || (st != PS_PARKED && st != PS_TAKEN))
		return false;
	/* the parent keeps its copy: closing ours sends no FIN */
	if (ps_probe_same(fd, c->cookie))
		ps_sys.close(fd);
	if (st == PS_PARKED)
		count(-1);
	drop(c);
	return true;
}

void ps_park_release(struct ps_conn *c)
{
	count(-1);
	drop(c);
}

static void flush_one(int fd, struct ps_conn *c, void *arg)
{
	(void)arg;
	if (fd != __atomic_load_n(&c->fd, __ATOMIC_RELAXED) || !ps_life_unpark(c))
		return;
	count(-1);
	demote(c, 0);
}

void ps_park_flush(void)
{
	if (__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) > 0)
		ps_fd_foreach(flush_one, NULL);
	slot.c = NULL;
}

/* (fd, c) is a parked number: what the program closed. */
static bool parked_at(int fd)
{
	struct ps_conn *c = fd >= 0 ? ps_fd_get(fd) : NULL;
	if (!c || __atomic_load_n(&c->fd, __ATOMIC_RELAXED) != fd)
		return false;
	int st = ps_conn_state(c);
	return st == PS_PARKED || st == PS_TAKEN;
}

int ps_park_poll_hide(struct pollfd *fds, nfds_t n, struct ps_parked_in_poll *p)
{
	p->n = 0;
	if (__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) == 0)
		return 0;
	for (nfds_t i = 0; i < n && p->n < PS_MAX_PARKED_IN_POLL; i++)
		if (parked_at(fds[i].fd)) {
			p->at[p->n] = i;
			p->number[p->n++] = fds[i].fd;
			fds[i].fd = -1; /* the kernel skips it */
		}
	return p->n;
}

int ps_park_poll_show(struct pollfd *fds, const struct ps_parked_in_poll *p, int r)
{
	for (int j = 0; j < p->n; j++) {
		fds[p->at[j]].fd = p->number[j];
		fds[p->at[j]].revents = POLLNVAL;
	}
	return r < 0 ? r : r + p->n;
}

bool ps_park_in_sets(int n, const fd_set *r, const fd_set *w, const fd_set *e)
{
	if (__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) == 0)
		return false;
	for (int fd = 0; fd < n && fd < FD_SETSIZE; fd++)
		if (((r && FD_ISSET(fd, r)) || (w && FD_ISSET(fd, w)) || (e && FD_ISSET(fd, e))) && parked_at(fd))
			return true;
	return false;
}
