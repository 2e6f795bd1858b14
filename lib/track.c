/* Owns what the calls around a connection teach the shim, recorded on its
 * record while the program holds it: flags, options, bindings, epoll
 * registrations and extra references.
 * Taints are sticky for the connection's life. */
#include "track.h"
#include "config.h"
#include "fdtable.h"
#include "log.h"
#include "state.h"
#include "sys.h"
#include "lifecycle.h"
#include "park.h"
#include "stats.h"

#include <errno.h>
#include <linux/close_range.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>

#ifndef SO_RCVTIMEO_NEW
#define SO_RCVTIMEO_NEW 66
#define SO_SNDTIMEO_NEW 67
#endif

void ps_track_new_fd(int fd)
{
	struct ps_conn *old;
	if (ps_fd_get(fd) && ps_fd_swap(fd, NULL, &old) == 0)
		ps_release_stale(old, fd);
}

void ps_track_drop(int fd)
{
	struct ps_conn *old;
	if (ps_fd_get(fd) && ps_fd_swap(fd, NULL, &old) == 0)
		ps_release_closing(old, fd);
}

void ps_track_taint(struct ps_conn *c, unsigned taint)
{
	ps_conn_add_taint(c, taint);
}

void ps_track_nonblock(struct ps_conn *c, int on) { c->nonblock = on != 0; }
void ps_track_cloexec(struct ps_conn *c, int on) { c->cloexec = on != 0; }

void ps_track_bind(struct ps_conn *c, const struct sockaddr *sa, socklen_t len, int ret)
{
	if (ret < 0)
		return;
	if (ps_conn_state(c) != PS_FRESH || ps_key_set_local(&c->key, sa, len) < 0)
		ps_conn_add_taint(c, PS_T_BOUND);
}

enum opt_kind {
	OPT_RESET, /* carried to the next user and reset to its default after */
	OPT_KEY,   /* part of the key: fixes something the peer or network sees */
	OPT_TAINT, /* unknown or irreversible: the connection is never pooled */
};

static enum opt_kind classify(int level, int name)
{
	switch (level) {
	case SOL_SOCKET:
		switch (name) {
		case SO_KEEPALIVE: case SO_RCVTIMEO: case SO_SNDTIMEO: case SO_RCVTIMEO_NEW:
		case SO_SNDTIMEO_NEW: case SO_REUSEADDR: case SO_REUSEPORT: case SO_PRIORITY:
		case SO_OOBINLINE: case SO_RCVLOWAT: case SO_LINGER:
			return OPT_RESET;
		case SO_MARK: case SO_BINDTODEVICE: case SO_RCVBUF: case SO_SNDBUF:
			return OPT_KEY;
		}
		return OPT_TAINT;
	case IPPROTO_TCP:
		switch (name) {
		case TCP_NODELAY: case TCP_KEEPIDLE: case TCP_KEEPINTVL: case TCP_KEEPCNT:
		case TCP_USER_TIMEOUT: case TCP_QUICKACK: case TCP_CORK: case TCP_NOTSENT_LOWAT:
		case TCP_SYNCNT: case TCP_CONGESTION: case TCP_LINGER2:
			return OPT_RESET;
		}
		return OPT_TAINT;
	case IPPROTO_IP:
		switch (name) {
		case IP_TOS: case IP_TTL: case IP_BIND_ADDRESS_NO_PORT:
			return OPT_RESET;
		}
		return OPT_TAINT;
	case IPPROTO_IPV6:
		switch (name) {
		case IPV6_TCLASS: case IPV6_UNICAST_HOPS:
			return OPT_RESET;
		case IPV6_V6ONLY:
			return OPT_KEY;
		}
		return OPT_TAINT;
	}
	return OPT_TAINT;
}

static struct ps_opt *find_opt(struct ps_conn *c, int level, int name)
{
	for (int i = 0; i < c->n_opts; i++)
		if (c->opts[i].level == level && c->opts[i].name == name)
			return &c->opts[i];
	return NULL;
}

/* The value a carried option has on a socket nobody has set it on: the
 * same for every socket of a family, so it is asked of the kernel once per
 * process, not at every setsockopt of every cycle.  Entries are written once
 * (under the pool lock) and read without it. */
#define MAX_DEFAULTS 16

static struct known_default {
	int ready; /* atomic: the fields below are final */
	int domain, level, name;
	uint8_t len;
	uint8_t value[PS_OPT_LEN];
} defaults[MAX_DEFAULTS];

static bool known_default(int domain, int level, int name, struct ps_opt *o)
{
	for (int i = 0; i < MAX_DEFAULTS; i++) {
		const struct known_default *d = &defaults[i];
		if (!__atomic_load_n(&d->ready, __ATOMIC_ACQUIRE))
			return false;
		if (d->domain == domain && d->level == level && d->name == name) {
			memcpy(o->default_value, d->value, sizeof o->default_value);
			o->default_len = d->len;
			return true;
		}
	}
	return false;
}

static void remember_default(int domain, int level, int name, const struct ps_opt *o)
{
	if (ps_lock() < 0)
		return;
	for (int i = 0; i < MAX_DEFAULTS; i++) {
		struct known_default *d = &defaults[i];
		if (d->ready) {
			if (d->domain == domain && d->level == level && d->name == name)
				break;
			continue;
		}
		d->domain = domain;
		d->level = level;
		d->name = name;
		d->len = o->default_len;
		memcpy(d->value, o->default_value, sizeof d->value);
		__atomic_store_n(&d->ready, 1, __ATOMIC_RELEASE);
		break;
	}
	ps_unlock();
}

void ps_track_setsockopt_before(struct ps_conn *c, int fd, int level, int name)
{
	if (classify(level, name) != OPT_RESET || find_opt(c, level, name))
		return;
	if (c->n_opts == PS_MAX_OPTS) {
		ps_conn_add_taint(c, PS_T_OPTION);
		return;
	}
	/* Stage the current (default) value in the next free slot; _after
	 * commits it only if the program's call succeeds. */
	struct ps_opt *o = &c->opts[c->n_opts];
	memset(o, 0, sizeof *o);
	o->level = level;
	o->name = name;
	if (!known_default(c->domain, level, name, o)) {
		socklen_t len = PS_OPT_LEN;
		int saved = errno;
		if (ps_sys.getsockopt(fd, level, name, o->default_value, &len) < 0 || len > PS_OPT_LEN)
			o->level = -1; /* no default known: _after taints */
		o->default_len = (uint8_t)len;
		errno = saved;
		if (o->level == level)
			remember_default(c->domain, level, name, o);
	}
}

static void record_key_option(struct ps_conn *c, int name, const void *val, socklen_t len)
{
	int v = 0;
	if (name == SO_BINDTODEVICE) {
		size_t n = len < PS_DEVICE_LEN - 1 ? len : PS_DEVICE_LEN - 1;
		memset(c->key.device, 0, sizeof c->key.device);
		memcpy(c->key.device, val, n);
		return;
	}
	if (len >= (socklen_t)sizeof v)
		memcpy(&v, val, sizeof v);
	switch (name) {
	case SO_MARK: c->key.mark = (uint32_t)v; break;
	case SO_RCVBUF: c->key.rcvbuf = v; break;
	case SO_SNDBUF: c->key.sndbuf = v; break;
	case IPV6_V6ONLY: c->key.v6only = v != 0; break;
	}
}

static bool lingers_on_close(int level, int name, const void *val, socklen_t len)
{
	const struct linger *l = val;
	return level == SOL_SOCKET && name == SO_LINGER && len >= (socklen_t)sizeof *l && l->l_onoff;
}

void ps_track_setsockopt_after(struct ps_conn *c, int level, int name, const void *val,
			       socklen_t len, int ret)
{
	if (ret < 0)
		return;
	switch (classify(level, name)) {
	case OPT_TAINT:
		ps_conn_add_taint(c, PS_T_OPTION);
		return;
	case OPT_KEY:
		/* after connect the key can no longer say it */
		if (ps_conn_state(c) != PS_FRESH)
			ps_conn_add_taint(c, PS_T_OPTION);
		else
			record_key_option(c, name, val, len);
		return;
	case OPT_RESET:
		break;
	}
	/* close() semantics of a lingering socket cannot survive pooling */
	if (lingers_on_close(level, name, val, len))
		ps_conn_add_taint(c, PS_T_OPTION);
	struct ps_opt *o = find_opt(c, level, name);
	if (!o) {
		if (c->n_opts == PS_MAX_OPTS || c->opts[c->n_opts].level != level ||
		    c->opts[c->n_opts].name != name) {
			ps_conn_add_taint(c, PS_T_OPTION);
			return;
		}
		o = &c->opts[c->n_opts++];
	}
	if (!val || len > PS_OPT_LEN) {
		ps_conn_add_taint(c, PS_T_OPTION);
		return;
	}
	memcpy(o->value, val, len);
	o->len = (uint8_t)len;
	o->this_use = 1;
}

bool ps_track_option_carried(int level, int name) { return classify(level, name) == OPT_RESET; }

bool ps_track_setsockopt_redundant(struct ps_conn *c, int level, int name, const void *val, socklen_t len)
{
	/* TCP_QUICKACK acts when it is set, whatever its value was */
	if (ps_conn_state(c) != PS_WARM || !val || (level == IPPROTO_TCP && name == TCP_QUICKACK))
		return false;
	struct ps_opt *o = find_opt(c, level, name);
	if (!o || o->len != len || memcmp(o->value, val, len) != 0)
		return false;
	o->this_use = 1;
	return true;
}

void ps_track_epoll_ctl(struct ps_conn *c, int epfd, int op, const struct epoll_event *ev, int ret)
{
	if (ret < 0)
		return;
	int i = 0;
	while (i < c->n_epoll && c->epoll[i].epfd != epfd)
		i++;
	switch (op) {
	case EPOLL_CTL_ADD:
	case EPOLL_CTL_MOD:
		if (!ev)
			return;
		if (i == c->n_epoll) {
			if (c->n_epoll == PS_MAX_EPOLL) {
				ps_conn_add_taint(c, PS_T_UNTRACKABLE);
				return;
			}
			c->n_epoll++;
		}
		c->epoll[i].epfd = epfd;
		c->epoll[i].ev = *ev;
		return;
	case EPOLL_CTL_DEL:
		if (i < c->n_epoll)
			c->epoll[i] = c->epoll[--c->n_epoll];
		return;
	}
}

void ps_track_passed_fds(const struct msghdr *m)
{
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR((struct msghdr *)m, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof fd, sizeof fd);
			struct ps_conn *c = ps_fd_get(fd);
			if (c)
				ps_conn_add_taint(c, PS_T_SHARED);
		}
	}
}

static void forget_in_range(int fd, struct ps_conn *c, void *arg)
{
	const unsigned *range = arg;
	struct ps_conn *old;
	if ((unsigned)fd < range[0] || (unsigned)fd > range[1])
		return;
	if (range[2] & CLOSE_RANGE_CLOEXEC) {
		if (fd == c->fd)
			c->cloexec = true;
		return;
	}
	if (ps_fd_swap(fd, NULL, &old) == 0)
		ps_release_closing(old, fd);
}

void ps_track_close_range(unsigned lo, unsigned hi, int flags)
{
	unsigned range[3] = { lo, hi, (unsigned)flags };
	ps_fd_foreach(forget_in_range, range);
}

int ps_fd_pressure(int err)
{
	if ((err != EMFILE && err != ENFILE) || ps_lock() < 0)
		return 0;
	struct ps_conn *c = ps_pool_evict_lru(&ps_g.pool);
	if (c)
		ps_life_take(c);
	ps_unlock();
	if (!c)
		return ps_park_evict_one(); /* park.h: a parked number is one more free */
	ps_stat_inc(PS_ST_EVICTED);
	ps_life_end(c);
	return 1;
}
