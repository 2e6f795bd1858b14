/* Owns the keeper protocol's bytes: encoding, the checks a received packet
 * must pass before anyone reads it, and moving one packet with its
 * descriptors.  Both ends decode with the same function, so the keeper and
 * the shim agree on what is garbage. */
#include "kmsg.h"
#include "sys.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

_Static_assert(sizeof(struct ps_kmsg_hdr) + sizeof(struct ps_km_unsafe) <= PS_KMSG_MAX, "unsafe");
_Static_assert(sizeof(struct ps_kmsg_hdr) + sizeof(struct ps_km_offer) <= PS_KMSG_MAX, "offer");
_Static_assert(sizeof(struct ps_kmsg_hdr) + sizeof(struct ps_km_status_head) <= PS_KMSG_MAX, "head");
_Static_assert(sizeof(struct ps_kmsg_hdr) + sizeof(struct ps_km_status_dest) <= PS_KMSG_MAX, "dest");

size_t ps_kmsg_encode(void *buf, int type, const void *body, size_t len)
{
	struct ps_kmsg_hdr h = {
		.magic = PS_KMSG_MAGIC,
		.version = PS_KMSG_VERSION,
		.type = (uint16_t)type,
		.key_size = sizeof(struct ps_key),
		.meta_size = sizeof(struct ps_shared_meta),
		.len = (uint32_t)len,
	};
	memcpy(buf, &h, sizeof h);
	if (len)
		memcpy((char *)buf + sizeof h, body, len);
	return sizeof h + len;
}

bool ps_kmsg_key_ok(const struct ps_key *k)
{
	return (k->family == AF_INET || k->family == AF_INET6) && k->type == SOCK_STREAM &&
	       k->protocol == 0 && k->path_len == 0 && k->local_port == 0 &&
	       (k->local_family == 0 || k->local_family == k->family);
}

bool ps_kmsg_dest_ok(const struct ps_key *k)
{
	return (k->family == AF_INET || k->family == AF_INET6) && k->path_len == 0;
}

static bool meta_ok(const struct ps_shared_meta *m)
{
	if (m->n_opts > PS_MAX_OPTS)
		return false;
	for (uint32_t i = 0; i < m->n_opts; i++)
		if (m->opts[i].len > PS_OPT_LEN || m->opts[i].default_len > PS_OPT_LEN)
			return false;
	return true;
}

/* The body size a type must have; 0 for an unknown type.  UNSAFE's is its
 * smallest (its count decides the rest). */
static size_t body_size(int type)
{
	switch (type) {
	case PS_KM_TAKE: return sizeof(struct ps_km_take);
	case PS_KM_OFFER: return sizeof(struct ps_km_offer);
	case PS_KM_UNSAFE: return offsetof(struct ps_km_unsafe, keys);
	case PS_KM_STATUS: return 0;
	case PS_KM_GIVE: return sizeof(struct ps_km_give);
	case PS_KM_NONE: return sizeof(struct ps_km_none);
	case PS_KM_STATUS_HEAD: return sizeof(struct ps_km_status_head);
	case PS_KM_STATUS_DEST: return sizeof(struct ps_km_status_dest);
	case PS_KM_STATUS_END: return 0;
	default: return (size_t)-1;
	}
}

static int bad(void)
{
	errno = EPROTO;
	return -1;
}

int ps_kmsg_decode(const void *buf, size_t n, struct ps_kmsg *m)
{
	struct ps_kmsg_hdr h;
	if (n < sizeof h)
		return bad();
	memcpy(&h, buf, sizeof h);
	if (h.magic != PS_KMSG_MAGIC || h.version != PS_KMSG_VERSION ||
	    h.key_size != sizeof(struct ps_key) || h.meta_size != sizeof(struct ps_shared_meta) ||
	    h.len != n - sizeof h)
		return bad();
	size_t want = body_size(h.type);
	if (want == (size_t)-1 || (h.type != PS_KM_UNSAFE && h.len != want) || h.len < want)
		return bad();
	/* the body is copied out by the caller: check it here on aligned copies */
	const char *body = (const char *)buf + sizeof h;
	switch (h.type) {
	case PS_KM_TAKE: {
		struct ps_km_take t;
		memcpy(&t, body, sizeof t);
		if (!ps_kmsg_key_ok(&t.key))
			return bad();
		break;
	}
	case PS_KM_OFFER: {
		struct ps_km_offer o;
		memcpy(&o, body, sizeof o);
		if (!ps_kmsg_key_ok(&o.key) || !meta_ok(&o.meta))
			return bad();
		break;
	}
	case PS_KM_GIVE: {
		struct ps_km_give g;
		memcpy(&g, body, sizeof g);
		if (!meta_ok(&g.meta))
			return bad();
		break;
	}
	case PS_KM_UNSAFE: {
		uint32_t count;
		memcpy(&count, body, sizeof count);
		if (count > PS_KMSG_MAX_UNSAFE || h.len != want + count * sizeof(struct ps_key))
			return bad();
		for (uint32_t i = 0; i < count; i++) {
			struct ps_key k;
			memcpy(&k, body + want + i * sizeof k, sizeof k);
			if (!ps_kmsg_dest_ok(&k))
				return bad();
		}
		break;
	}
	default:
		break;
	}
	m->type = h.type;
	m->body = body;
	m->len = h.len;
	return 0;
}

int ps_kmsg_send(int s, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		memset(&ctl, 0, sizeof ctl);
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof ctl.buf;
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	}
	ssize_t n = ps_sys.sendmsg(s, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0)
		return -1;
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

void ps_kmsg_close_fds(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		ps_sys.close(fds[i]);
}

#define RECV_FDS 4

ssize_t ps_kmsg_recv(int s, void *buf, int *fds, int max_fds, int *nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(RECV_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = PS_KMSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf };
	int got[RECV_FDS];
	int n_got = 0;
	*nfds = 0;
	ssize_t n = ps_sys.recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -1;
	/* every descriptor that arrived is ours to close, whatever else is wrong */
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k && n_got < RECV_FDS; i++)
			memcpy(&got[n_got++], CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
	}
	/* MSG_CTRUNC: descriptors beyond our buffer were dropped by the kernel */
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n_got > max_fds) {
		ps_kmsg_close_fds(got, n_got);
		errno = EMSGSIZE;
		return -1;
	}
	memcpy(fds, got, (size_t)n_got * sizeof(int));
	*nfds = n_got;
	return n;
}

void ps_shared_meta_of(const struct ps_conn *c, struct ps_shared_meta *m)
{
	memset(m, 0, sizeof *m);
	m->cookie = c->cookie;
	m->created_ns = c->created_ns;
	m->last_used_ns = c->last_used_ns;
	m->sent = c->sent;
	m->reuse_count = c->reuse_count;
	m->n_opts = (uint32_t)c->n_opts;
	memcpy(m->opts, c->opts, sizeof m->opts);
}
