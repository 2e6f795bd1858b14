/* Owns the entry points of events.h: what each intercepted call means for
 * the record at its descriptor, in the order that keeps the state machine
 * (lifecycle.h) true.  The program's call is made here, through ps_libc, and
 * errno is left exactly as that call left it. */
#include "events.h"
#include "config.h"
#include "fdtable.h"
#include "handoff.h"
#include "key.h"
#include "libc.h"
#include "lifecycle.h"
#include "park.h"
#include "listeners.h"
#include "probe.h"
#include "ready.h"
#include "state.h"
#include "stats.h"
#include "track.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/ioctl.h>

static bool poolable_kind(int domain, int type, int protocol)
{
	if ((type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != SOCK_STREAM)
		return false;
	if (domain == AF_INET || domain == AF_INET6)
		return protocol == 0 || protocol == IPPROTO_TCP;
	if (domain == AF_UNIX)
		return ps_config.unix_sockets && protocol == 0;
	return false;
}

/* The record at fd for a call that a warm socket (park.h) cannot answer
 * as a fresh one: it is settled first.  NULL with *fail set when fd is a
 * parked number (the call fails with EBADF). */
static struct ps_conn *settled(int fd, bool *fail)
{
	struct ps_conn *c = ps_fd_program(fd);
	*fail = c && ps_park_gate(c, fd, true) < 0;
	return *fail ? NULL : c;
}

/* The same for a call a warm socket answers as it is. */
static struct ps_conn *as_is(int fd, bool *fail)
{
	struct ps_conn *c = ps_fd_program(fd);
	*fail = c && ps_park_gate(c, fd, false) < 0;
	return *fail ? NULL : c;
}

int ps_socket(int domain, int type, int protocol)
{
	if (ps_g.ready && !ps_config.disable && poolable_kind(domain, type, protocol)) {
		ps_check_fork();
		ps_park_thread_start();
		int warm = ps_park_reissue(domain, type, protocol);
		if (warm >= 0)
			return warm;
	}
	int fd = ps_libc.socket(domain, type, protocol);
	if (fd < 0 && ps_fd_pressure(errno))
		fd = ps_libc.socket(domain, type, protocol);
	if (fd < 0)
		return fd;
	int saved = errno;
	if (ps_g.ready)
		ps_check_fork();
	if (!ps_g.ready || ps_config.disable || !poolable_kind(domain, type, protocol) ||
	    !ps_life_new(fd, domain, type, protocol))
		ps_track_new_fd(fd);
	errno = saved;
	return fd;
}

int ps_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	bool fail;
	struct ps_conn *c = settled(fd, &fail);
	if (fail)
		return -1;
	int r = ps_libc.bind(fd, sa, len);
	if (c) {
		int saved = errno;
		ps_track_bind(c, sa, len, r);
		errno = saved;
	}
	return r;
}

int ps_setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	bool fail;
	/* a carried option is set on the warm socket itself (and reset for the
	 * next user); one that shapes the key or taints wants a fresh socket */
	struct ps_conn *c = ps_track_option_carried(level, name) ? as_is(fd, &fail) : settled(fd, &fail);
	if (fail)
		return -1;
	if (!c)
		return ps_libc.setsockopt(fd, level, name, val, len);
	if (ps_track_setsockopt_redundant(c, level, name, val, len))
		return 0;
	int saved = errno;
	ps_track_setsockopt_before(c, fd, level, name);
	errno = saved;
	int r = ps_libc.setsockopt(fd, level, name, val, len);
	saved = errno;
	ps_track_setsockopt_after(c, level, name, val, len, r);
	errno = saved;
	return r;
}

/* What a warm socket answers as a fresh one would: the last user's value
 * of a carried option is not this user's (its default is). */
static bool warm_answer(struct ps_conn *c, int level, int name, void *val, socklen_t *len)
{
	if (ps_conn_state(c) != PS_WARM || !val || !len)
		return false;
	for (int i = 0; i < c->n_opts; i++) {
		const struct ps_opt *o = &c->opts[i];
		if (o->level == level && o->name == name && !o->this_use) {
			socklen_t n = *len < o->default_len ? *len : o->default_len;
			memcpy(val, o->default_value, n);
			*len = n;
			return true;
		}
	}
	return false;
}

static bool answered_as_is(int level, int name)
{
	return ps_track_option_carried(level, name) ||
	       (level == SOL_SOCKET && (name == SO_ERROR || name == SO_TYPE || name == SO_DOMAIN ||
					name == SO_PROTOCOL || name == SO_ACCEPTCONN));
}

int ps_getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	bool fail;
	struct ps_conn *c = answered_as_is(level, name) ? as_is(fd, &fail) : settled(fd, &fail);
	if (fail)
		return -1;
	if (c && warm_answer(c, level, name, val, len))
		return 0;
	if (c && level == SOL_SOCKET && name == SO_ERROR)
		ps_ready_check(fd); /* a dead reused connection is replaced first */
	int r = ps_libc.getsockopt(fd, level, name, val, len);
	/* the push of a split request (io.c) is ours, not the program's */
	if (c && r == 0 && level == IPPROTO_TCP && name == TCP_NODELAY && c->nodelay_pushed && val &&
	    len && *len >= (socklen_t)sizeof(int))
		*(int *)val = 0;
	return r;
}

/* The destination part of c's key (its local part was set by bind and
 * setsockopt); false when the pool can never hold such a destination. */
static bool set_destination(struct ps_conn *c, const struct sockaddr *sa, socklen_t len)
{
	struct ps_key k;
	if (!sa || len > (socklen_t)sizeof c->dest || ps_key_init(&k, c->type, c->protocol, sa, len) < 0)
		return false;
	ps_key_copy_local(&k, &c->key);
	c->key = k;
	memcpy(&c->dest, sa, len);
	c->dest_len = len;
	return true;
}

/* The program's own connect on a tracked fresh socket. */
static int real_connect(struct ps_conn *c, int fd, const struct sockaddr *sa, socklen_t len)
{
	if (!ps_life_begin_connect(c))
		return ps_libc.connect(fd, sa, len);
	int r = ps_libc.connect(fd, sa, len);
	int err = errno;
	/* EINTR: the handshake goes on in the background, as for EINPROGRESS */
	bool connected = r == 0 || err == EINPROGRESS || err == EINTR;
	if (connected) {
		uint64_t cookie = 0;
		if (ps_probe_cookie(fd, &cookie) < 0 || !c->dest_len)
			ps_conn_add_taint(c, PS_T_UNTRACKABLE);
		c->cookie = cookie;
		c->created_ns = ps_now_ns();
		c->checkout_ns = c->created_ns;
		c->sent = 0;
		c->sent_before_use = 0;
		ps_proto_init(&c->proto, ps_config.protocols);
		ps_stat_inc(PS_ST_MISSES);
	}
	if (ps_life_end_connect(c, connected) && connected && !ps_conn_taint(c))
		ps_reaper_start();
	errno = err;
	return r;
}

int ps_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct ps_conn *c = ps_fd_program(fd);
	if (!c)
		return ps_libc.connect(fd, sa, len);
	int saved = errno;
	if (ps_conn_state(c) == PS_WARM) {
		/* park.h: the number already holds a pooled connection */
		int r = ps_warm_connect(c, fd, sa, len);
		if (r < 0)
			return -1;
		if (r > 0) {
			errno = c->nonblock ? EINPROGRESS : saved;
			return c->nonblock ? -1 : 0;
		}
		errno = saved;
	}
	if (ps_park_gate(c, fd, false) < 0)
		return -1;
	if (ps_conn_state(c) != PS_FRESH) {
		/* A repeat connect goes to the kernel (EISCONN/EALREADY), never
		 * to a second checkout; AF_UNSPEC dissolves the connection.
		 * hiredis asks this way whether its connect completed. */
		if (sa && len >= (socklen_t)sizeof(sa_family_t) && sa->sa_family == AF_UNSPEC)
			ps_track_taint(c, PS_T_UNTRACKABLE);
		else
			ps_ready_check(fd);
		errno = saved;
		return ps_libc.connect(fd, sa, len);
	}
	if (!set_destination(c, sa, len))
		ps_track_taint(c, PS_T_UNTRACKABLE);
	else if (ps_listens_on(&c->key))
		ps_track_taint(c, PS_T_SAME_PROCESS);
	else if (ps_life_begin_checkout(c)) {
		int hit = ps_checkout(c, fd);
		if (ps_life_end_checkout(c, hit)) {
			/* the program closed the number while we worked on it (a
			 * signal handler): that close happens now */
			ps_close(fd);
			if (!hit) {
				errno = EBADF;
				return -1;
			}
		}
		if (hit) {
			/* as a fresh connect reports it: a non-blocking socket is
			 * "in progress", and already writable with SO_ERROR 0 */
			errno = c->nonblock ? EINPROGRESS : saved;
			return c->nonblock ? -1 : 0;
		}
	}
	errno = saved;
	return real_connect(c, fd, sa, len);
}

int ps_listen(int fd, int backlog)
{
	bool fail;
	settled(fd, &fail);
	if (fail)
		return -1;
	int r = ps_libc.listen(fd, backlog);
	if (r == 0)
		ps_listening(fd);
	return r;
}

int ps_shutdown(int fd, int how)
{
	bool fail;
	struct ps_conn *c = settled(fd, &fail);
	if (fail)
		return -1;
	/* before the call: the EOF it causes in a blocked recv must already
	 * read as the program's own doing, never as a stale reuse */
	if (c)
		ps_track_taint(c, PS_T_SHUTDOWN);
	return ps_libc.shutdown(fd, how);
}

int ps_close(int fd)
{
	struct ps_conn *c = ps_fd_get(fd);
	if (!c)
		return ps_libc.close(fd);
	int saved = errno;
	if (fd == c->hidden) {
		/* the program closed one of the pool's numbers (a close-everything
		 * loop): the connection goes, the number is the program's again */
		if (ps_fd_cas(fd, c, NULL) && ps_release_hidden(c))
			return ps_libc.close(fd);
		errno = saved;
		return 0;
	}
	if (fd != c->fd)
		return ps_libc.close(fd);
	if (ps_park_gate(c, fd, false) < 0)
		return -1; /* park.h: closed already, a second close fails */
	int r = 0;
	switch (ps_life_claim(c, true)) {
	case PS_CLAIM_NONE:
	case PS_CLAIM_PARKED: /* (not asked for here) */
		return ps_libc.close(fd);
	case PS_CLAIM_DEFERRED:
		break; /* the operation that owns the number makes this close */
	case PS_CLAIM_CLOSING:
	case PS_CLAIM_CLOSED:
		errno = EBADF; /* the close in progress wins, as in the kernel */
		return -1;
	case PS_CLAIM_WARM:
		/* closed before connect: unused, it parks again as it was */
		if (!ps_conn_taint(c) && c->generation == ps_g.generation && ps_park(c, fd)) {
			errno = saved;
			return 0;
		}
		ps_fd_cas(fd, c, NULL);
		__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
		ps_life_end(c);
		return ps_libc.close(fd);
	case PS_CLAIM_FRESH:
		ps_fd_cas(fd, c, NULL);
		__atomic_store_n(&c->fd, -1, __ATOMIC_RELAXED);
		ps_life_end(c);
		return ps_libc.close(fd);
	case PS_CLAIM_ACTIVE:
		r = ps_checkin(c, fd);
		if (r == 0)
			errno = saved;
		return r;
	}
	errno = saved;
	return r;
}

/* newfd now refers to what oldfd refers to. */
static int duplicated(int oldfd, int newfd)
{
	if (newfd < 0)
		return newfd;
	int saved = errno;
	struct ps_conn *c = ps_fd_get(oldfd);
	if (c)
		ps_track_taint(c, PS_T_SHARED);
	ps_track_new_fd(newfd);
	errno = saved;
	return newfd;
}

/* dup2/dup3 onto a tracked fd close what was there: drop it first. */
static void replacing(int oldfd, int newfd)
{
	if (oldfd != newfd && ps_fd_get(newfd)) {
		int saved = errno;
		ps_track_drop(newfd);
		errno = saved;
	}
}

int ps_dup(int fd)
{
	bool fail;
	settled(fd, &fail);
	return fail ? -1 : duplicated(fd, ps_libc.dup(fd));
}

int ps_dup2(int oldfd, int newfd)
{
	bool fail;
	settled(oldfd, &fail);
	if (fail)
		return -1;
	replacing(oldfd, newfd);
	int r = ps_libc.dup2(oldfd, newfd);
	return oldfd == newfd ? r : duplicated(oldfd, r);
}

int ps_dup3(int oldfd, int newfd, int flags)
{
	bool fail;
	settled(oldfd, &fail);
	if (fail)
		return -1;
	replacing(oldfd, newfd);
	return duplicated(oldfd, ps_libc.dup3(oldfd, newfd, flags));
}

/* fcntl commands a warm socket answers as it is (flags, tracked) */
static bool fcntl_as_is(int cmd, unsigned long arg)
{
	return cmd == F_GETFL || cmd == F_GETFD || cmd == F_SETFD || (cmd == F_SETFL && !(arg & O_ASYNC));
}

int ps_fcntl(int fd, int cmd, unsigned long arg, int is64)
{
	bool fail;
	struct ps_conn *c = fcntl_as_is(cmd, arg) ? as_is(fd, &fail) : settled(fd, &fail);
	if (fail)
		return -1;
	int r = is64 ? ps_libc.fcntl64(fd, cmd, arg) : ps_libc.fcntl(fd, cmd, arg);
	if (!c || r < 0)
		return r;
	int saved = errno;
	switch (cmd) {
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		duplicated(fd, r);
		break;
	case F_SETFL:
		ps_track_nonblock(c, (arg & O_NONBLOCK) != 0);
		if (arg & O_ASYNC)
			ps_track_taint(c, PS_T_UNTRACKABLE);
		break;
	case F_SETFD:
		ps_track_cloexec(c, (arg & FD_CLOEXEC) != 0);
		break;
	case F_SETOWN:
	case F_SETOWN_EX:
	case F_SETSIG:
		ps_track_taint(c, PS_T_UNTRACKABLE);
		break;
	}
	errno = saved;
	return r;
}

int ps_ioctl(int fd, unsigned long request, void *arg)
{
	bool fail;
	struct ps_conn *c = request == FIONBIO ? as_is(fd, &fail) : settled(fd, &fail);
	if (fail)
		return -1;
	int r = ps_libc.ioctl(fd, request, arg);
	if (c && r == 0 && arg) {
		if (request == FIONBIO)
			ps_track_nonblock(c, *(int *)arg);
		else if (request == FIOASYNC && *(int *)arg)
			ps_track_taint(c, PS_T_UNTRACKABLE);
	}
	return r;
}

/* A FILE* closes its fd with glibc's internal close, which no hook sees:
 * such a socket is never pooled, and its stale record is caught by the
 * identity check when the number is reused. */
FILE *ps_fdopen(int fd, const char *mode)
{
	bool fail;
	struct ps_conn *c = settled(fd, &fail);
	if (fail)
		return NULL;
	if (c)
		ps_track_taint(c, PS_T_SHARED);
	return ps_libc.fdopen(fd, mode);
}

int ps_close_range(unsigned lo, unsigned hi, int flags)
{
	if (!ps_libc.close_range) {
		errno = ENOSYS;
		return -1;
	}
	/* Forget first (another thread may reuse a number the moment it is
	 * closed), but only for a call that will close: bad arguments fail
	 * with EINVAL and the hidden descriptors must stay known. */
	if (lo <= hi && !(flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC))) {
		int saved = errno;
		ps_track_close_range(lo, hi, flags);
		errno = saved;
	}
	return ps_libc.close_range(lo, hi, flags);
}

void ps_closefrom(int lo)
{
	if (lo < 0)
		lo = 0;
	int saved = errno;
	ps_track_close_range((unsigned)lo, ~0u, 0);
	errno = saved;
	if (ps_libc.closefrom)
		ps_libc.closefrom(lo);
}

int ps_epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	bool fail;
	struct ps_conn *c = as_is(fd, &fail);
	if (fail)
		return -1;
	int r = ps_libc.epoll_ctl(epfd, op, fd, ev);
	if (c) {
		int saved = errno;
		ps_track_epoll_ctl(c, epfd, op, ev, r);
		errno = saved;
	}
	return r;
}

int ps_getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	bool fail;
	settled(fd, &fail); /* a fresh socket has no local address yet */
	return fail ? -1 : ps_libc.getsockname(fd, sa, len);
}

int ps_getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	bool fail;
	settled(fd, &fail); /* nor a peer */
	return fail ? -1 : ps_libc.getpeername(fd, sa, len);
}

int ps_fstat(int fd, void *st, int is64)
{
	bool fail;
	as_is(fd, &fail); /* a socket either way */
	if (fail)
		return -1;
	return is64 ? ps_libc.fstat64(fd, st) : ps_libc.fstat(fd, st);
}

int ps_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags, int with_flags)
{
	bool fail;
	settled(fd, &fail);
	if (fail)
		return -1;
	int r = with_flags ? ps_libc.accept4(fd, sa, len, flags) : ps_libc.accept(fd, sa, len);
	if (r < 0 && ps_fd_pressure(errno))
		r = with_flags ? ps_libc.accept4(fd, sa, len, flags) : ps_libc.accept(fd, sa, len);
	if (r >= 0) {
		int saved = errno;
		ps_track_new_fd(r);
		errno = saved;
	}
	return r;
}

int ps_opened(int fd, int (*open_again)(void *ctx), void *ctx)
{
	if (fd < 0 && ps_fd_pressure(errno))
		fd = open_again(ctx);
	if (fd >= 0 && ps_fd_get(fd)) {
		int saved = errno;
		ps_track_new_fd(fd);
		errno = saved;
	}
	return fd;
}
