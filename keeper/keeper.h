/* poolshim-keeper: one per user, holding idle connections for that user's
 * processes (docs/shared.md).  The parts:
 *   main.c     options, environment, detaching, the lock and the socket
 *   serve.c    the poll loop: clients, the reaping timer, the linger
 *   request.c  one request: the peer's uid, the message, the answer
 *   store.c    what is held (lib/pool.c's idle lists and caps)
 *   vet.c      whether an offered descriptor is what it claims
 *   status.c   --status: ask a running keeper and print its answer */
#ifndef POOLSHIM_KEEPER_H
#define POOLSHIM_KEEPER_H

#include "rundir.h"
#include "store.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct k_keeper {
	uid_t uid;                /* the only uid served */
	pid_t pid;
	struct ps_rundir rd;
	struct k_store store;
	uint64_t started_ns;
	uint64_t last_request_ns; /* the linger counts from here */
	uint64_t linger_ns;
	bool warned_peer;         /* another uid: said once */
};

/* Reads and handles one packet waiting on client socket cs.  Returns 1 to
 * keep the client, 0 to drop it (it closed, sent garbage or is another
 * uid), -1 when nothing was waiting. */
int k_request(struct k_keeper *kp, int cs, uint64_t now);

/* Runs until the linger passes with no request, or SIGTERM/SIGINT; ls is
 * the listening socket.  Closes what it holds before returning. */
void k_serve(struct k_keeper *kp, int ls);

/* --status: prints what the keeper for rd holds.  Returns the exit
 * status (0, or 1: no keeper answered). */
int k_status(const struct ps_rundir *rd);

#endif
