/* What the keeper holds: idle connections in a ps_pool (lib/pool.h, the
 * same idle lists, LRU and caps as a process's own pool), the cookies it
 * holds (a socket is held once, never twice), per-destination counters for
 * the status, and the unsafe destinations processes reported.
 *
 * Single-threaded: only the keeper's loop touches it.  The store owns the
 * descriptors it holds and closes every one it lets go. */
#ifndef POOLSHIM_KEEPER_STORE_H
#define POOLSHIM_KEEPER_STORE_H

#include "conn.h"
#include "kmsg.h"
#include "mem.h"
#include "pool.h"

#include <stdbool.h>
#include <stdint.h>

struct k_dest;
struct k_cookie;

/* The caps, from the POOLSHIM_* variables the keeper was started with. */
struct k_caps {
	unsigned max_per_key, max_total;
	uint64_t idle_timeout_ns, max_lifetime_ns;
	unsigned max_reuse;
};

struct k_store {
	struct k_caps caps;
	struct ps_pool pool;
	struct ps_slab conns, dests, cookies;
	struct k_dest *dests_by_key;    /* uthash: per-destination counters, unsafe mark */
	struct k_cookie *held_cookies;  /* uthash: cookies of held connections */
	unsigned n_dests, n_unsafe;
	uint64_t counters[PS_KC_COUNT];
};

void k_store_init(struct k_store *s, const struct k_caps *caps);

/* Keeps fd (already vetted: keeper/vet.h) for k.  Returns 0, or -1 with
 * fd closed: a socket already held, an unsafe or expired one, no memory.
 * Connections the caps push out are closed. */
int k_store_offer(struct k_store *s, const struct ps_key *k, const struct ps_shared_meta *m, int fd,
		  uint64_t now);

/* A held connection for k that is still within the caps, still the same
 * socket and healthy; the dead ones met on the way are closed.  Returns
 * its descriptor (now the caller's) with *m filled, or -1. */
int k_store_take(struct k_store *s, const struct ps_key *k, uint64_t now, struct ps_shared_meta *m);

/* Takes back a connection k_store_take handed out that could not be sent:
 * it is held again as it was (or closed, if that fails). */
void k_store_untake(struct k_store *s, const struct ps_key *k, const struct ps_shared_meta *m, int fd,
		    uint64_t now);

/* Destinations, as the shim reports them: held connections to one are
 * closed, and it is answered as unsafe from then on. */
void k_store_mark_unsafe(struct k_store *s, const struct ps_key *k);
bool k_store_is_unsafe(struct k_store *s, const struct ps_key *k);

/* Closes what has expired; returns when the next one will (UINT64_MAX:
 * nothing held). */
uint64_t k_store_reap(struct k_store *s, uint64_t now);

/* Closes everything (exit). */
void k_store_drain(struct k_store *s);

unsigned k_store_held(const struct k_store *s);

/* Calls fn once per destination the store knows (status). */
void k_store_foreach(struct k_store *s, uint64_t now,
		     void (*fn)(const struct ps_km_status_dest *d, void *arg), void *arg);

#endif
