/* Owns the table of this process's listeners (listeners.h).  A fixed array
 * under the pool lock; an entry is checked lazily: only a destination that
 * matches it costs a syscall, which proves that the listener still exists
 * (same SO_COOKIE) or drops the entry.  A table that overflowed matches
 * every local connection: not pooling is the safe direction. */
#include "listeners.h"
#include "libc.h"
#include "probe.h"
#include "state.h"
#include "sys.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

struct listener {
	bool used;
	uint64_t cookie;
	int fd;
	struct ps_key where; /* family, port, address (or path); all-zero address: wildcard */
};

static struct listener table[PS_MAX_LISTENERS];
static int n_listeners;   /* atomic: 0 keeps every connect free of this check */
static bool overflowed;

void ps_listening(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct listener l = { .used = true, .fd = fd };
	int saved = errno;
	bool known = ps_probe_cookie(fd, &l.cookie) == 0 &&
		     ps_sys.getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
		     ps_key_init(&l.where, 0, 0, (struct sockaddr *)&ss, len) == 0;
	errno = saved;
	if (ps_lock() < 0)
		return;
	int i = 0;
	while (i < PS_MAX_LISTENERS && table[i].used && !(table[i].fd == fd && known))
		i++;
	if (!known || i == PS_MAX_LISTENERS)
		overflowed = true;
	else
		table[i] = l;
	__atomic_store_n(&n_listeners, n_listeners + 1, __ATOMIC_RELEASE);
	ps_unlock();
}

static bool wildcard(const struct ps_key *k)
{
	static const uint8_t zero[16];
	return (k->family == AF_INET && memcmp(k->addr, zero, 4) == 0) ||
	       (k->family == AF_INET6 && memcmp(k->addr, zero, 16) == 0);
}

static bool matches(const struct ps_key *l, const struct ps_key *k)
{
	if (l->family == AF_UNIX || k->family == AF_UNIX)
		return l->family == k->family && l->path_len == k->path_len &&
		       memcmp(l->addr, k->addr, l->path_len) == 0;
	if (l->port != k->port)
		return false;
	/* an IPv6 wildcard also takes IPv4 (unless v6only): be safe */
	if (wildcard(l))
		return l->family == k->family || l->family == AF_INET6;
	return l->family == k->family && memcmp(l->addr, k->addr, k->family == AF_INET ? 4 : 16) == 0;
}

bool ps_listens_on(const struct ps_key *k)
{
	if (!__atomic_load_n(&n_listeners, __ATOMIC_ACQUIRE))
		return false;
	if (ps_lock() < 0)
		return true;
	bool hit = overflowed && k->family != AF_UNIX;
	for (int i = 0; i < PS_MAX_LISTENERS && !hit; i++) {
		if (!table[i].used || !matches(&table[i].where, k))
			continue;
		if (ps_probe_same(table[i].fd, table[i].cookie))
			hit = true;
		else
			table[i].used = false; /* closed since: its number is someone else's */
	}
	ps_unlock();
	return hit;
}
