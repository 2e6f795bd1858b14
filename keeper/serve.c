/* Owns the keeper's loop: one thread, one poll() over the listening
 * socket, a signalfd and the clients; the timeout is the next of: a held
 * connection expiring, the linger running out, a silent client's time.
 * Every socket is non-blocking, so one slow or hostile client delays the
 * others by one packet at most. */
#include "keeper.h"
#include "clock.h"
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 256
/* a client that says nothing for this long is dropped: an exchange takes
 * a few milliseconds, and the slots are few */
#define CLIENT_SILENCE_NS (10 * PS_NS_PER_SEC)
#define BURST 32 /* packets or accepts per client per pass: fairness */

struct client {
	int fd;
	uint64_t since; /* its last packet, or its connect */
	struct k_pending pend;
};

/* Ends client i (compacted out later).  delivered: whether a pending
 * hand-over reached it (keeper.h); when in doubt it did, and our copy is
 * closed: never two users of one socket. */
static void drop(struct k_keeper *kp, struct client *c, bool delivered, uint64_t now)
{
	k_settle(kp, &c->pend, delivered, now);
	close(c->fd);
	c->fd = -1;
}

/* Removes dropped clients, keeping the others in the order they came. */
static void compact(struct client *cl, int *n)
{
	int k = 0;
	for (int i = 0; i < *n; i++)
		if (cl[i].fd >= 0)
			cl[k++] = cl[i];
	*n = k;
}

static void serve_client(struct k_keeper *kp, struct client *c, short revents, uint64_t now)
{
	if (revents & POLLNVAL) {
		drop(kp, c, true, now);
		return;
	}
	for (int k = 0; k < BURST; k++) {
		enum k_result r = k_request(kp, c->fd, now, &c->pend);
		if (r == K_DROP || r == K_RESET) {
			drop(kp, c, r != K_RESET, now);
			return;
		}
		if (r == K_IDLE)
			return;
		c->since = now;
	}
}

static void accept_clients(int ls, struct client *cl, int *n, uint64_t now)
{
	for (int k = 0; k < BURST; k++) {
		int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (*n == MAX_CLIENTS) {
			close(fd); /* the asker connects by itself: it costs speed only */
			continue;
		}
		cl[*n].fd = fd;
		cl[*n].since = now;
		cl[*n].pend.fd = -1;
		(*n)++;
	}
}

static int stop_signals(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

void k_serve(struct k_keeper *kp, int ls)
{
	static struct client cl[MAX_CLIENTS];
	static struct pollfd pfd[2 + MAX_CLIENTS];
	int n = 0;
	int sfd = stop_signals();
	for (;;) {
		uint64_t now = ps_now_ns();
		uint64_t wake = k_store_reap(&kp->store, now);
		uint64_t linger_at = kp->last_request_ns + kp->linger_ns;
		if (now >= linger_at) {
			PS_LOG_INFO("no request for %llu s: closing %u held connections and exiting",
				    (unsigned long long)(kp->linger_ns / PS_NS_PER_SEC), k_store_held(&kp->store));
			break;
		}
		if (linger_at < wake)
			wake = linger_at;
		for (int i = 0; i < n; i++) {
			if (now - cl[i].since >= CLIENT_SILENCE_NS)
				drop(kp, &cl[i], true, now);
			else if (cl[i].since + CLIENT_SILENCE_NS < wake)
				wake = cl[i].since + CLIENT_SILENCE_NS;
		}
		compact(cl, &n);
		uint64_t ms = (wake - now + 999999) / 1000000;
		pfd[0] = (struct pollfd){ .fd = ls, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		for (int i = 0; i < n; i++)
			pfd[2 + i] = (struct pollfd){ .fd = cl[i].fd, .events = POLLIN };
		int nc = n;
		int r = poll(pfd, (nfds_t)(2 + nc), ms > 60000 ? 60000 : (int)ms);
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		now = ps_now_ns();
		if (pfd[1].revents) {
			PS_LOG_INFO("stopped by a signal: closing %u held connections", k_store_held(&kp->store));
			break;
		}
		/* oldest first: an offer a process made as it exited is held
		 * before the question of the process that came after it */
		for (int i = 0; i < nc; i++)
			if (pfd[2 + i].revents)
				serve_client(kp, &cl[i], pfd[2 + i].revents, now);
		if (pfd[0].revents & POLLIN) {
			int first = n;
			accept_clients(ls, cl, &n, now);
			/* a new client has usually sent its request already: read it
			 * now rather than after one more poll() */
			for (int i = first; i < n; i++)
				serve_client(kp, &cl[i], POLLIN, now);
		}
		compact(cl, &n);
	}
	for (int i = 0; i < n; i++)
		drop(kp, &cl[i], true, ps_now_ns());
	if (sfd >= 0)
		close(sfd);
	k_store_drain(&kp->store);
}
