/* Owns one request (keeper.h).  The order is the security model's: the
 * peer's uid first (SO_PEERCRED, on every packet), then the message's
 * shape (kmsg.c), then what it asks.  A packet that fails a check changes
 * nothing: its descriptors are closed, the client is dropped, and every
 * other client and every held connection is as before. */
#include "keeper.h"
#include "log.h"
#include "vet.h"
#include "sys.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

static bool peer_allowed(struct k_keeper *kp, int cs)
{
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (ps_sys.getsockopt(cs, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && len == sizeof cr &&
	    cr.uid == kp->uid)
		return true;
	kp->store.counters[PS_KC_BAD_PEERS]++;
	if (!kp->warned_peer) {
		kp->warned_peer = true;
		PS_LOG_WARN("refused a request from uid %ld (pid %ld): this keeper serves uid %lu only",
			    len == sizeof cr ? (long)cr.uid : -1L, len == sizeof cr ? (long)cr.pid : -1L,
			    (unsigned long)kp->uid);
	}
	return false;
}

static void reply(int cs, int type, const void *body, size_t len, int fd)
{
	char buf[PS_KMSG_MAX];
	size_t n = ps_kmsg_encode(buf, type, body, len);
	(void)ps_kmsg_send(cs, buf, n, fd);
}

static void take(struct k_keeper *kp, int cs, const struct ps_km_take *t, uint64_t now,
		 struct k_pending *pend)
{
	struct ps_km_give g;
	struct ps_km_none none = { 0, 0 };
	kp->store.counters[PS_KC_TAKES]++;
	if (k_store_is_unsafe(&kp->store, &t->key)) {
		none.flags = PS_KM_UNSAFE_DEST;
		reply(cs, PS_KM_NONE, &none, sizeof none, -1);
		return;
	}
	int fd = k_store_take(&kp->store, &t->key, now, &g.meta);
	if (fd < 0) {
		reply(cs, PS_KM_NONE, &none, sizeof none, -1);
		return;
	}
	char buf[PS_KMSG_MAX];
	size_t n = ps_kmsg_encode(buf, PS_KM_GIVE, &g, sizeof g);
	if (ps_kmsg_send(cs, buf, n, fd) < 0) {
		/* the asker is gone or stuck: the connection is still good */
		k_store_untake(&kp->store, &t->key, &g.meta, fd, now);
		return;
	}
	pend->fd = fd;
	pend->key = t->key;
	pend->meta = g.meta;
}

void k_settle(struct k_keeper *kp, struct k_pending *pend, bool delivered, uint64_t now)
{
	if (pend->fd < 0)
		return;
	if (delivered) {
		ps_sys.close(pend->fd);
		kp->store.counters[PS_KC_HITS]++;
	} else {
		kp->store.counters[PS_KC_UNREAD]++;
		k_store_untake(&kp->store, &pend->key, &pend->meta, pend->fd, now);
	}
	pend->fd = -1;
}

static void offer(struct k_keeper *kp, const struct ps_km_offer *o, int fd, uint64_t now)
{
	kp->store.counters[PS_KC_OFFERS]++;
	const char *why = k_vet(fd, &o->key, o->meta.cookie, kp->rd.netns);
	if (why) {
		char dest[160];
		ps_key_format(&o->key, dest, sizeof dest);
		PS_LOG_INFO("refused a connection offered for %s: %s", dest, why);
		ps_sys.close(fd);
		kp->store.counters[PS_KC_REFUSED]++;
		return;
	}
	k_store_offer(&kp->store, &o->key, &o->meta, fd, now);
}

/* The status is many packets: a reader slower than us gets a short wait
 * (never a long one: the loop serves everyone). */
static void reply_patiently(int cs, int type, const void *body, size_t len)
{
	char buf[PS_KMSG_MAX];
	size_t n = ps_kmsg_encode(buf, type, body, len);
	for (int tries = 0; tries < 10; tries++) {
		if (ps_kmsg_send(cs, buf, n, -1) == 0 || errno != EAGAIN)
			return;
		struct pollfd p = { .fd = cs, .events = POLLOUT };
		poll(&p, 1, 20);
	}
}

struct status_ctx {
	int cs;
};

static void status_dest(const struct ps_km_status_dest *d, void *arg)
{
	struct status_ctx *ctx = arg;
	reply_patiently(ctx->cs, PS_KM_STATUS_DEST, d, sizeof *d);
}

static void status(struct k_keeper *kp, int cs, uint64_t now)
{
	struct ps_km_status_head h;
	memset(&h, 0, sizeof h);
	h.pid = (int32_t)kp->pid;
	h.uid = (uint32_t)kp->uid;
	h.uptime_ns = now - kp->started_ns;
	h.quiet_ns = now - kp->last_request_ns;
	h.linger_ns = kp->linger_ns;
	h.idle_timeout_ns = kp->store.caps.idle_timeout_ns;
	h.max_lifetime_ns = kp->store.caps.max_lifetime_ns;
	h.max_reuse = kp->store.caps.max_reuse;
	h.max_per_key = kp->store.caps.max_per_key;
	h.max_total = kp->store.caps.max_total;
	h.held = k_store_held(&kp->store);
	h.n_dest = kp->store.n_dests;
	h.n_unsafe = kp->store.n_unsafe;
	memcpy(h.counters, kp->store.counters, sizeof h.counters);
	reply_patiently(cs, PS_KM_STATUS_HEAD, &h, sizeof h);
	struct status_ctx ctx = { cs };
	k_store_foreach(&kp->store, now, status_dest, &ctx);
	reply_patiently(cs, PS_KM_STATUS_END, NULL, 0);
}

enum k_result k_request(struct k_keeper *kp, int cs, uint64_t now, struct k_pending *pend)
{
	char buf[PS_KMSG_MAX];
	int fds[1], nfds = 0;
	ssize_t n = ps_kmsg_recv(cs, buf, fds, 1, &nfds);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return K_IDLE;
	if (n == 0)
		return K_DROP;
	if (n < 0 && errno == ECONNRESET)
		return K_RESET; /* it closed with our answer unread (keeper.h) */
	if (n < 0) {
		/* too long, or too many descriptors: closed by ps_kmsg_recv */
		kp->store.counters[PS_KC_BAD_MESSAGES]++;
		return K_DROP;
	}
	/* it speaks again: it has read what we sent */
	k_settle(kp, pend, true, now);
	if (!peer_allowed(kp, cs)) {
		ps_kmsg_close_fds(fds, nfds);
		return K_DROP;
	}
	struct ps_kmsg m;
	bool ok = ps_kmsg_decode(buf, (size_t)n, &m) == 0;
	/* only an OFFER carries a descriptor, and exactly one */
	if (ok && (m.type == PS_KM_OFFER) != (nfds == 1))
		ok = false;
	if (ok && m.type != PS_KM_TAKE && m.type != PS_KM_OFFER && m.type != PS_KM_UNSAFE &&
	    m.type != PS_KM_STATUS)
		ok = false; /* an answer's type, sent to the keeper */
	if (!ok) {
		ps_kmsg_close_fds(fds, nfds);
		kp->store.counters[PS_KC_BAD_MESSAGES]++;
		return K_DROP;
	}
	kp->last_request_ns = now;
	switch (m.type) {
	case PS_KM_TAKE: {
		struct ps_km_take t;
		memcpy(&t, m.body, sizeof t);
		take(kp, cs, &t, now, pend);
		break;
	}
	case PS_KM_OFFER: {
		struct ps_km_offer o;
		memcpy(&o, m.body, sizeof o);
		offer(kp, &o, fds[0], now);
		break;
	}
	case PS_KM_UNSAFE: {
		struct ps_km_unsafe u;
		memset(&u, 0, sizeof u);
		memcpy(&u, m.body, m.len);
		for (uint32_t i = 0; i < u.n; i++)
			k_store_mark_unsafe(&kp->store, &u.keys[i]);
		break;
	}
	case PS_KM_STATUS:
		status(kp, cs, now);
		break;
	}
	return K_KEEP;
}
