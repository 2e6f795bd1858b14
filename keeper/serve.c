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
};

static void drop(struct client *cl, int *n, int i)
{
	close(cl[i].fd);
	cl[i] = cl[--*n];
}

static void serve_client(struct k_keeper *kp, struct client *cl, int *n, int i, short revents,
			 uint64_t now)
{
	if (revents & POLLIN) {
		for (int k = 0; k < BURST; k++) {
			int r = k_request(kp, cl[i].fd, now);
			if (r == 0) {
				drop(cl, n, i);
				return;
			}
			if (r < 0)
				break;
			cl[i].since = now;
		}
		return;
	}
	if (revents & (POLLHUP | POLLERR | POLLNVAL))
		drop(cl, n, i);
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
		for (int i = 0; i < n;) {
			if (now - cl[i].since >= CLIENT_SILENCE_NS) {
				drop(cl, &n, i);
				continue;
			}
			if (cl[i].since + CLIENT_SILENCE_NS < wake)
				wake = cl[i].since + CLIENT_SILENCE_NS;
			i++;
		}
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
		/* back to front: a drop moves the last client into the slot */
		for (int i = nc - 1; i >= 0; i--)
			if (pfd[2 + i].revents)
				serve_client(kp, cl, &n, i, pfd[2 + i].revents, now);
		if (pfd[0].revents & POLLIN)
			accept_clients(ls, cl, &n, now);
	}
	while (n)
		drop(cl, &n, n - 1);
	if (sfd >= 0)
		close(sfd);
	k_store_drain(&kp->store);
}
