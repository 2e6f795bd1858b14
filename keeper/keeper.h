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

/* A connection handed out whose hand-over is not settled yet.  The GIVE
 * carries it in flight; the keeper keeps its own copy (out of the pool,
 * touched by nobody) until it knows where the in-flight one went:
 *  - the asker reads the answer and closes, or speaks again: it has it,
 *    and our copy is closed;
 *  - the asker closes with the answer unread (it gave up waiting: the
 *    shim's bound): the kernel destroys the copy in flight and tells us
 *    with ECONNRESET, and ours goes back into the pool instead of the
 *    connection being lost. */
struct k_pending {
	int fd; /* -1: none */
	struct ps_key key;
	struct ps_shared_meta meta;
};

enum k_result {
	K_IDLE = -1,  /* nothing was waiting */
	K_DROP = 0,   /* drop the client: it closed, sent garbage, is another uid */
	K_KEEP = 1,   /* a request was handled */
	K_RESET = 2,  /* it closed with our answer unread */
};

/* Reads and handles one packet waiting on client socket cs.  A hand-over
 * it makes is left in *pend (which must be empty: k_settle first). */
enum k_result k_request(struct k_keeper *kp, int cs, uint64_t now, struct k_pending *pend);

/* Settles a pending hand-over: delivered (our copy closed) or not (our
 * copy held again). */
void k_settle(struct k_keeper *kp, struct k_pending *pend, bool delivered, uint64_t now);

/* Runs until the linger passes with no request, or SIGTERM/SIGINT; ls is
 * the listening socket.  Closes what it holds before returning. */
void k_serve(struct k_keeper *kp, int ls);

/* --status: prints what the keeper for rd holds.  Returns the exit
 * status (0, or 1: no keeper answered). */
int k_status(const struct ps_rundir *rd);

#endif
