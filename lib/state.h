/* The process-wide pool state and its lock.
 *
 * Locking: ps_g.lock guards ps_g.pool, the record and replay slabs, the
 * unsafe destination set and every ps_conn's pool linkage and its IDLE ->
 * TAKEN transition (lifecycle.h).  It is never held across a blocking call: the only syscalls
 * made under it are munmap/mmap in the allocators.  The fd table (fdtable.h)
 * and the per-record atomics are lock-free.  A signal handler that interrupts
 * the lock holder and calls close()/connect() sees ps_lock() fail and passes
 * through (HAZARDS.md 17). */
#ifndef POOLSHIM_STATE_H
#define POOLSHIM_STATE_H

#include "conn.h"
#include "key.h"
#include "mem.h"
#include "pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

struct ps_unsafe;

/* A page the kernel zeroes in a child (MADV_WIPEONFORK): _Fork and raw
 * clone skip the atfork handlers, so a zero here is how the child finds out. */
struct ps_fork_page {
	int alive;
};

struct ps_global {
	pthread_mutex_t lock;
	struct ps_pool pool;
	struct ps_slab conn_slab;
	struct ps_slab replay_slab;
	struct ps_replay *spare_replays; /* freed without the lock; lock-free push */
	struct ps_slab unsafe_slab;
	struct ps_unsafe *unsafe;   /* uthash set of destinations never pooled */
	unsigned n_unsafe;
	int hidden_floor;           /* hidden descriptors go at or above this */
	int generation;             /* bumped in a forked child */
	bool ready;
	struct ps_conn *orphans;    /* records freed without the lock; lock-free push */
	struct ps_fork_page *fork_page;
	bool reaper;                /* start the reaper thread on the first checkin */
};

extern struct ps_global ps_g;

#define PS_MAX_UNSAFE 1024

/* Sets up the pool from ps_config (parsed before).  Idempotent. */
int ps_state_init(void);

/* Recomputes the hidden-descriptor floor from the current RLIMIT_NOFILE. */
void ps_state_update_floor(void);

/* Takes the pool lock.  Returns -1 if this thread already holds it (a signal
 * handler interrupted it): the caller must pass through. */
int ps_lock(void);
void ps_unlock(void);

/* Records: allocate/free under the lock. */
struct ps_conn *ps_conn_alloc_locked(void);
void ps_conn_free_locked(struct ps_conn *c);
/* Frees with the lock if it can be had, else defers to the next holder. */
void ps_conn_free(struct ps_conn *c);
/* Number of live records (tests, leak checks). */
size_t ps_conn_live(void);

/* Unsafe destinations (server speaks first, TLS): remembered for the life
 * of the process.  Call with the lock held. */
bool ps_unsafe_has_locked(const struct ps_key *k);
void ps_unsafe_add_locked(const struct ps_key *k);
/* Lock-taking variants (no-op / false when the lock cannot be had). */
bool ps_unsafe_has(const struct ps_key *k);
void ps_unsafe_add(const struct ps_key *k);
/* Copies up to max unsafe destinations (destination part only) to out, for
 * the keeper (shared.h).  Returns how many.  Call with the lock held. */
size_t ps_unsafe_copy_locked(struct ps_key *out, size_t max);

/* A table slot for number was taken from record old (the number was closed
 * behind the shim's back and reused, or is being closed now): forget what
 * old held there without touching that descriptor.  A stale program fd
 * frees the record; a stale hidden fd takes an idle connection out of the
 * pool. */
void ps_release_stale(struct ps_conn *old, int number);

/* The same for a number a hooked call is closing right now (dup2 onto it,
 * close_range): not an identity mismatch, only bookkeeping. */
void ps_release_closing(struct ps_conn *old, int number);

/* Something else is about to happen to the number of c's hidden descriptor
 * (the program closes it, dup2s onto it).  Returns true when c was idle: it
 * has left the pool, and the number is the caller's to close or replace.
 * False: c is in transit and its owner, seeing the flag, will close the
 * number itself, so the caller must leave it alone. */
bool ps_release_hidden(struct ps_conn *c);

/* Ends the connections of a list (through free_next) the caller owns:
 * taken from the pool, or claimed from the program (ps_life_end each). */
void ps_terminate(struct ps_conn *list);
/* Marks a list the pool handed back (reap, evict, drain) as taken by the
 * caller: IDLE -> TAKEN for each.  Call with the lock held. */
void ps_take_list_locked(struct ps_conn *list);

/* Replay buffers (conn.h): from their own slab, under the lock.  NULL when
 * the lock cannot be had (a signal handler) or memory is short: the request
 * is then not kept, and cannot be resent. */
struct ps_replay *ps_replay_alloc(void);
void ps_replay_free(struct ps_replay *r);

/* Fork handling: called around fork() by the shim's atfork handlers. */
void ps_fork_prepare(void);
void ps_fork_parent(void);
void ps_fork_child(void);

/* A child made without atfork handlers: reset as ps_fork_child does. */
void ps_after_raw_fork(void);

static inline void ps_check_fork(void)
{
	struct ps_fork_page *p = ps_g.fork_page;
	if (__builtin_expect(p && !__atomic_load_n(&p->alive, __ATOMIC_RELAXED), 0))
		ps_after_raw_fork();
}

/* The reaper: a thread that closes idle connections as they expire even
 * when the program goes quiet; it sleeps until the next expiry.  Started by
 * the first real connect of a poolable connection (never in the
 * constructor); a checkin wakes it when the pool was empty. */
void ps_reaper_start(void);
void ps_reaper_kick(void);
/* A connection was parked (park.h) that expires at `expiry`: wakes the
 * thread only when it would sleep past that. */
void ps_reaper_kick_parked(uint64_t expiry);
/* In a forked child the thread is gone: the next kick starts a new one. */
void ps_reaper_forget(void);

#endif
