/* Sharing idle connections across processes through poolshim-keeper
 * (POOLSHIM_SHARED=1; docs/shared.md).  Off by default.
 *
 * The shim's side, in two layers:
 *   shared.c       exchanges with the keeper: ask for a connection, offer
 *                  some, start the keeper when there is none; every
 *                  exchange on its own short-lived, close-on-exec socket,
 *                  bounded by PS_SHARED_BOUND_NS;
 *   shared_pool.c  the glue with the in-process pool: a received
 *                  connection becomes a TAKEN record that handoff.c proves
 *                  and adopts like one of its own; idle records leave for
 *                  the keeper at exit and when the pool evicts them.
 *
 * Nothing here ever blocks the program longer than the bound: a keeper
 * that is slow, absent, dead or not ours means the program connects
 * itself, as without the keeper. */
#ifndef POOLSHIM_SHARED_H
#define POOLSHIM_SHARED_H

#include "conn.h"
#include "kmsg.h"

#include <stdbool.h>

/* The most a connect() waits for the keeper, connecting to it included. */
#define PS_SHARED_BOUND_NS (5 * 1000000ull)

/* After an in-process miss: asks the keeper for a connection with key k.
 * Returns a descriptor (close-on-exec, at or above ps_g.hidden_floor) with
 * *meta filled, or -1: no keeper, nothing held, no answer in time.  On -1,
 * meta->flags has PS_KM_UNSAFE_DEST when the keeper knows the destination
 * to be unsafe.  The caller proves the connection before any use. */
int ps_shared_take(const struct ps_key *k, struct ps_shared_meta *meta);

/* One exchange carrying offers (no answers: the keeper vets each one). */
struct ps_shared_batch {
	int s;
};
/* Opens it; -1 when no keeper of ours answers (none is started for an
 * offer: the connections are simply closed). */
int ps_shared_batch_open(struct ps_shared_batch *b);
/* Sends fd with its key and metadata; the caller closes its copy after.
 * Returns 0, or -1 (the keeper is gone, or its queue is full). */
int ps_shared_batch_offer(struct ps_shared_batch *b, const struct ps_key *k,
			  const struct ps_shared_meta *m, int fd);
/* Sends destinations found unsafe (destination part of the key). */
int ps_shared_batch_unsafe(struct ps_shared_batch *b, const struct ps_key *keys, size_t n);
void ps_shared_batch_close(struct ps_shared_batch *b);

/* At start-up, while the log holds configuration warnings (once per
 * process tree): with POOLSHIM_SHARED=1, a POOLSHIM_KEEPER that is no
 * program is said now, and no process tries to start it. */
void ps_shared_init(void);

/* Starts the keeper unless one holds its lock, at most once per process
 * (shared_spawn.c).  Returns without waiting for it to listen. */
void ps_shared_spawn(void);

/* ---- shared_pool.c: what handoff.c and init.c call ---- */

/* checkout, after the in-process pool had nothing for c's key: the
 * keeper's connection as a TAKEN record (lifecycle.h) for the caller to
 * prove and adopt, or NULL.  An answer that the destination is unsafe
 * marks it so here and taints c (PS_T_FILTER). */
struct ps_conn *ps_shared_checkout(struct ps_conn *c);

/* Ends every record of list (TAKEN, linked through free_next), first
 * offering to the keeper those still proven idle: for the pool's
 * evictions.  Without POOLSHIM_SHARED, the same as ps_terminate(list). */
void ps_shared_offer(struct ps_conn *list);

/* At exit: every idle connection of the pool and the unsafe destinations
 * go to the keeper.  Nothing without POOLSHIM_SHARED. */
void ps_shared_exit(void);

#endif
