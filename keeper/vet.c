/* Owns the vetting of offered descriptors (vet.h).  Each getsockopt goes
 * through ps_sys, so the unit tests can fake what the kernel says. */
#include "vet.h"
#include "probe.h"
#include "sys.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

static int opt(int fd, int level, int name, int *val)
{
	socklen_t len = sizeof *val;
	return ps_sys.getsockopt(fd, level, name, val, &len) == 0 && len == sizeof *val ? 0 : -1;
}

/* Whether an address (peer or local) is the one the key names. */
static bool same_addr(const struct sockaddr_storage *ss, int family, const uint8_t *addr, uint16_t port,
		      bool check_port)
{
	if (ss->ss_family != family)
		return false;
	if (family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
		return memcmp(&in->sin_addr, addr, 4) == 0 && (!check_port || in->sin_port == port);
	}
	const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
	return memcmp(&in6->sin6_addr, addr, 16) == 0 && (!check_port || in6->sin6_port == port);
}

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

const char *k_vet(int fd, const struct ps_key *k, uint64_t cookie, uint64_t netns)
{
	uint64_t ns = 0;
	socklen_t nslen = sizeof ns;
	int type, domain, protocol, listening;
	uint64_t real;
	struct tcp_info ti;
	socklen_t len;
	struct sockaddr_storage ss;

	if (opt(fd, SOL_SOCKET, SO_TYPE, &type) < 0)
		return "not a socket";
	if (opt(fd, SOL_SOCKET, SO_DOMAIN, &domain) < 0 || opt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol) < 0 ||
	    type != SOCK_STREAM || protocol != IPPROTO_TCP || (domain != AF_INET && domain != AF_INET6))
		return "not a TCP socket";
	if (domain != k->family)
		return "not of the key's address family";
	if (opt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening) < 0 || listening)
		return "a listening socket";
	if (ps_probe_cookie(fd, &real) < 0 || real != cookie)
		return "not the socket its cookie names";
	/* 127.0.0.1:80 of another network namespace is another server */
	if (netns && (ps_sys.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &ns, &nslen) < 0 || ns != netns))
		return "of another network namespace";
	len = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (ps_sys.getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ti.tcpi_state != TCP_ESTABLISHED)
		return "not an established connection";
	len = sizeof ss;
	memset(&ss, 0, sizeof ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
	    !same_addr(&ss, k->family, k->addr, k->port, true))
		return "not connected to the key's destination";
	if (k->local_family) {
		len = sizeof ss;
		memset(&ss, 0, sizeof ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
		    !same_addr(&ss, k->local_family, k->local_addr, 0, false))
			return "not bound to the key's local address";
	}
	if (ps_probe_health(fd) != PS_HEALTHY)
		return "not quiet (unread bytes, closed or failed)";
	return NULL;
}
