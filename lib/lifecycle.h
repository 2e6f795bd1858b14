/* The connection state machine (conn.h lists the states; docs/state-machine.md
 * draws them).  Every transition is one function here that checks its
 * precondition with a CAS on the record's state word and fails, changing
 * nothing, when the record is not where the caller believes it is.  A record
 * ends in one place, ps_life_end(), and is freed when the last I/O call that
 * entered it has left (ps_life_io_leave), so a late completion can never
 * land on the next incarnation.
 *
 * Who may call what: the thread that made the last successful transition
 * owns the record until its next one; IDLE records belong to the pool lock
 * (state.h).  A close() that finds the number owned by a shim operation
 * (CHECKOUT, RECONNECTING) does not touch it: it leaves PS_F_CLOSE_PENDING,
 * and the operation's end transition hands that close back to its owner. */
#ifndef POOLSHIM_LIFECYCLE_H
#define POOLSHIM_LIFECYCLE_H

#include "conn.h"

#include <stdbool.h>

/* FREE -> FRESH: a record for the program's new socket at fd, published in
 * the fd table.  NULL when none can be had (the fd is then untracked). */
struct ps_conn *ps_life_new(int fd, int domain, int type, int protocol);

/* FRESH -> CONNECTING, around the program's own connect(). */
bool ps_life_begin_connect(struct ps_conn *c);
/* CONNECTING -> ACTIVE (connected or in progress) or -> FRESH (failed).
 * Returns false when a close took the record meanwhile. */
bool ps_life_end_connect(struct ps_conn *c, bool connected);

/* FRESH -> CHECKOUT: connect() will try the pool for this number. */
bool ps_life_begin_checkout(struct ps_conn *c);
/* WARM -> CHECKOUT: connect() proves the warm connection, or another call
 * settles the number fresh (park.h); ended by ps_life_end_checkout too. */
bool ps_life_begin_settle(struct ps_conn *c);
/* CHECKOUT -> ACTIVE (hit) or -> FRESH (miss).  Returns true when the
 * program closed the number meanwhile: the caller must now make that close
 * (the record is in the end state, with the flag cleared). */
bool ps_life_end_checkout(struct ps_conn *c, bool hit);

/* ACTIVE -> RECONNECTING: the shim will replace the connection under the
 * program's number. */
bool ps_life_begin_reconnect(struct ps_conn *c);
/* RECONNECTING -> ACTIVE.  Returns true when a close is pending (as above). */
bool ps_life_end_reconnect(struct ps_conn *c);

enum ps_claim {
	PS_CLAIM_NONE,     /* not a program number in a closable state: pass through */
	PS_CLAIM_FRESH,    /* FRESH or CONNECTING -> CHECKIN: no connection to keep */
	PS_CLAIM_ACTIVE,   /* ACTIVE -> CHECKIN */
	PS_CLAIM_DEFERRED, /* CHECKOUT/RECONNECTING: PS_F_CLOSE_PENDING left for the owner */
	PS_CLAIM_CLOSING,  /* already in CHECKIN: a nested close (a signal handler) */
	PS_CLAIM_WARM,     /* WARM -> CHECKIN: closed before connect; it parks again */
	PS_CLAIM_PARKED,   /* (not defer) PARKED -> TAKEN: the number is going away */
	PS_CLAIM_CLOSED,   /* (defer) PARKED: the program closed this number already */
};
/* close(): takes the record from the program.  defer: false when the number
 * is going away whatever the shim does (dup2 onto it, or it was already
 * closed behind the shim's back): then an owned record is left to its owner,
 * who finds the descriptor changed. */
enum ps_claim ps_life_claim(struct ps_conn *c, bool defer);

/* CHECKIN -> IDLE (caller holds the pool lock).  False when the program
 * closed the hidden number meanwhile. */
bool ps_life_pool(struct ps_conn *c);
/* IDLE -> TAKEN (caller holds the pool lock). */
bool ps_life_take(struct ps_conn *c);
/* TAKEN -> IDLE: a connection moved into the pool from elsewhere (a parked
 * one, park.h), under the pool lock. */
bool ps_life_pool_taken(struct ps_conn *c);

/* Parking (park.h): CHECKIN -> PARKED; PARKED -> TAKEN by whoever takes it;
 * TAKEN -> PARKED (taken by mistake, given back); TAKEN -> WARM (socket()
 * gave it back to the program). */
bool ps_life_park(struct ps_conn *c);
bool ps_life_unpark(struct ps_conn *c);
bool ps_life_repark(struct ps_conn *c);
bool ps_life_warm(struct ps_conn *c);

/* The program closed the number of c's hidden descriptor. */
void ps_life_mark_hidden_closed(struct ps_conn *c);
bool ps_life_hidden_closed(struct ps_conn *c);

/* Any owned state -> DEAD: closes the hidden copy if it still holds c's
 * socket, clears c's fd-table slots, and frees c once no I/O call is inside
 * it.  The only way a record ends. */
void ps_life_end(struct ps_conn *c);

/* The I/O bracket.  enter returns c's incarnation with inflight raised when
 * fd is c's number and c is ACTIVE; 0 (nothing raised) otherwise. */
uint32_t ps_life_io_enter(struct ps_conn *c, int fd);
void ps_life_io_leave(struct ps_conn *c);

/* Whether c still is incarnation seq in state st (the I/O path re-checks
 * before acting on what it learnt). */
bool ps_life_is(struct ps_conn *c, uint32_t seq, int st);

/* FREE -> TAKEN: a record for a connection received from the keeper
 * (shared.h) on the hidden descriptor `hidden`, owned by the caller, who
 * proves and adopts it as one taken from the pool, or ends it.  The
 * descriptor is published in the fd table as hidden, so a program that
 * closes that number meanwhile is noticed.  NULL when no record can be had
 * (the descriptor is then still the caller's). */
struct ps_conn *ps_life_received(int hidden);

#endif
