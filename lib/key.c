/* Owns key normalisation: only the bytes the peer or network can observe go
 * into a key (sin6_flowinfo and sockaddr padding do not). */
#include "key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <uthash.h>

int ps_key_init(struct ps_key *k, int type, int protocol, const struct sockaddr *sa, socklen_t len)
{
	memset(k, 0, sizeof *k);
	if (!sa || len < (socklen_t)sizeof(sa_family_t))
		return -1;
	k->type = type;
	k->protocol = (protocol == IPPROTO_TCP && sa->sa_family != AF_UNIX) ? 0 : protocol;
	k->family = sa->sa_family;
	switch (sa->sa_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		if (len < (socklen_t)sizeof *in)
			return -1;
		k->port = in->sin_port;
		memcpy(k->addr, &in->sin_addr, 4);
		return 0;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (len < (socklen_t)sizeof *in6)
			return -1;
		k->port = in6->sin6_port;
		k->scope_id = in6->sin6_scope_id;
		memcpy(k->addr, &in6->sin6_addr, 16);
		return 0;
	}
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)(const void *)sa;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		if (len <= off || len > (socklen_t)sizeof *un)
			return -1;
		size_t n = len - off;
		/* a pathname address stops at its NUL; an abstract one (leading NUL) is len-sized */
		if (un->sun_path[0] != '\0')
			n = strnlen(un->sun_path, n);
		if (n == 0)
			return -1;
		k->path_len = (uint16_t)n;
		memcpy(k->addr, un->sun_path, n);
		return 0;
	}
	default:
		return -1;
	}
}

int ps_key_set_local(struct ps_key *k, const struct sockaddr *sa, socklen_t len)
{
	if (!sa || len < (socklen_t)sizeof(sa_family_t))
		return -1;
	if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		if (in->sin_port != 0)
			return -1;
		k->local_family = AF_INET;
		memcpy(k->local_addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (in6->sin6_port != 0)
			return -1;
		k->local_family = AF_INET6;
		memcpy(k->local_addr, &in6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

bool ps_key_equal(const struct ps_key *a, const struct ps_key *b)
{
	return memcmp(a, b, sizeof *a) == 0;
}

uint32_t ps_key_hash(const struct ps_key *k)
{
	unsigned hashv;
	HASH_VALUE(k, sizeof *k, hashv);
	return hashv;
}

int ps_key_format(const struct ps_key *k, char *buf, size_t len)
{
	char addr[INET6_ADDRSTRLEN];
	switch (k->family) {
	case AF_INET:
		inet_ntop(AF_INET, k->addr, addr, sizeof addr);
		return snprintf(buf, len, "%s:%u", addr, ntohs(k->port));
	case AF_INET6:
		inet_ntop(AF_INET6, k->addr, addr, sizeof addr);
		if (k->scope_id)
			return snprintf(buf, len, "[%s%%%u]:%u", addr, k->scope_id, ntohs(k->port));
		return snprintf(buf, len, "[%s]:%u", addr, ntohs(k->port));
	case AF_UNIX:
		return snprintf(buf, len, "unix:%s%.*s", k->addr[0] ? "" : "@",
				(int)(k->path_len - (k->addr[0] ? 0 : 1)), (const char *)k->addr + (k->addr[0] ? 0 : 1));
	default:
		return snprintf(buf, len, "family-%u", k->family);
	}
}

void ps_key_copy_local(struct ps_key *dst, const struct ps_key *src)
{
	dst->local_family = src->local_family;
	dst->local_port = src->local_port;
	memcpy(dst->local_addr, src->local_addr, sizeof dst->local_addr);
	dst->mark = src->mark;
	dst->rcvbuf = src->rcvbuf;
	dst->sndbuf = src->sndbuf;
	memcpy(dst->device, src->device, sizeof dst->device);
	dst->v6only = src->v6only;
}
