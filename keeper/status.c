/* Owns --status: one STATUS exchange with the running keeper (the same
 * directory, socket and uid checks as the shim's), printed for people.
 * The numbers are the keeper's; this file only lays them out. */
#include "keeper.h"
#include "kmsg.h"
#include "sys.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static double sec(uint64_t ns) { return (double)ns / 1e9; }

static void print_head(const struct ps_km_status_head *h)
{
	const uint64_t *c = h->counters;
	printf("poolshim-keeper %ld (uid %lu): up %.1f s, last request %.1f s ago, exits after %.0f s "
	       "without one\n",
	       (long)h->pid, (unsigned long)h->uid, sec(h->uptime_ns), sec(h->quiet_ns), sec(h->linger_ns));
	printf("holding %u idle connection%s (at most %u per destination, %u in all; idle timeout %.3g s",
	       h->held, h->held == 1 ? "" : "s", h->max_per_key, h->max_total, sec(h->idle_timeout_ns));
	if (h->max_lifetime_ns)
		printf(", lifetime %.3g s", sec(h->max_lifetime_ns));
	if (h->max_reuse)
		printf(", reuse %u", h->max_reuse);
	printf(")\n");
	printf("offers %llu (%llu held, %llu refused); requests %llu (%llu handed out, %llu too late); "
	       "%llu reaped, %llu evicted, %llu found dead; %llu bad messages, %llu from other uids\n",
	       (unsigned long long)c[PS_KC_OFFERS], (unsigned long long)c[PS_KC_HELD],
	       (unsigned long long)c[PS_KC_REFUSED], (unsigned long long)c[PS_KC_TAKES],
	       (unsigned long long)c[PS_KC_HITS], (unsigned long long)c[PS_KC_UNREAD],
	       (unsigned long long)c[PS_KC_REAPED],
	       (unsigned long long)c[PS_KC_EVICTED], (unsigned long long)c[PS_KC_STALE],
	       (unsigned long long)c[PS_KC_BAD_MESSAGES], (unsigned long long)c[PS_KC_BAD_PEERS]);
}

static void print_dest(const struct ps_km_status_dest *d, bool *titled)
{
	char dest[160];
	ps_key_format(&d->key, dest, sizeof dest);
	if (d->unsafe) {
		printf("%-28s unsafe (server speaks first, TLS, or an abandoned answer): never pooled\n", dest);
		return;
	}
	if (!*titled) {
		printf("%-28s %6s %8s %8s %12s %12s %12s\n", "destination", "idle", "hits", "offers",
		       "newest idle", "oldest idle", "oldest age");
		*titled = true;
	}
	if (d->idle)
		printf("%-28s %6u %8llu %8llu %10.1f s %10.1f s %10.1f s\n", dest, d->idle,
		       (unsigned long long)d->hits, (unsigned long long)d->offers, sec(d->newest_idle_ns),
		       sec(d->oldest_idle_ns), sec(d->oldest_age_ns));
	else
		printf("%-28s %6u %8llu %8llu %12s %12s %12s\n", dest, 0u, (unsigned long long)d->hits,
		       (unsigned long long)d->offers, "-", "-", "-");
}

static int connect_keeper(const struct ps_rundir *rd)
{
	char why[160];
	struct sockaddr_un sa;
	struct ucred cr;
	socklen_t len = sizeof cr;
	if (ps_rundir_check(rd, false, why, sizeof why) < 0 || ps_rundir_check_socket(rd, why, sizeof why) < 0) {
		if (why[0])
			fprintf(stderr, "poolshim-keeper: refusing to use it: %s\n", why);
		return -1;
	}
	int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, ps_rundir_addr(rd, &sa)) < 0 ||
	    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0 || cr.uid != rd->uid) {
		if (s >= 0)
			close(s);
		return -1;
	}
	return s;
}

int k_status(const struct ps_rundir *rd)
{
	char buf[PS_KMSG_MAX];
	int s = connect_keeper(rd);
	if (s < 0) {
		printf("no keeper is running for uid %lu (%s)\n", (unsigned long)rd->uid, rd->sock);
		return 1;
	}
	size_t n = ps_kmsg_encode(buf, PS_KM_STATUS, NULL, 0);
	if (ps_kmsg_send(s, buf, n, -1) < 0) {
		close(s);
		printf("the keeper for uid %lu did not take the request\n", (unsigned long)rd->uid);
		return 1;
	}
	bool titled = false, head = false;
	for (;;) {
		struct pollfd p = { .fd = s, .events = POLLIN };
		int fds[1], nfds;
		if (poll(&p, 1, 2000) <= 0)
			break;
		ssize_t got = ps_kmsg_recv(s, buf, fds, 0, &nfds);
		struct ps_kmsg m;
		if (got <= 0 || ps_kmsg_decode(buf, (size_t)got, &m) < 0)
			break;
		if (m.type == PS_KM_STATUS_END) {
			close(s);
			return head ? 0 : 1;
		}
		if (m.type == PS_KM_STATUS_HEAD) {
			struct ps_km_status_head h;
			memcpy(&h, m.body, sizeof h);
			print_head(&h);
			head = true;
		} else if (m.type == PS_KM_STATUS_DEST) {
			struct ps_km_status_dest d;
			memcpy(&d, m.body, sizeof d);
			print_dest(&d, &titled);
		}
	}
	close(s);
	printf("the keeper for uid %lu did not answer in full\n", (unsigned long)rd->uid);
	return 1;
}
