/* fd -> tracked record, readable without a lock.  Two levels: a top array of
 * chunk pointers sized from RLIMIT_NOFILE's hard limit, and chunks of
 * PS_FD_CHUNK slots allocated on first use and published with a CAS, so the
 * table grows without copying and no concurrent update is ever lost.  Chunks
 * are never freed. */
#ifndef POOLSHIM_FDTABLE_H
#define POOLSHIM_FDTABLE_H

#include "conn.h"

#include <stdbool.h>
#include <stddef.h>

#define PS_FD_CHUNK_SHIFT 10
#define PS_FD_CHUNK (1u << PS_FD_CHUNK_SHIFT)

struct ps_fd_chunk {
	struct ps_conn *slot[PS_FD_CHUNK]; /* atomic */
};

extern struct ps_fd_chunk **ps_fd_chunks; /* array of atomic pointers; set before ps_fd_nchunks */
extern size_t ps_fd_nchunks;            /* 0 until init; atomic */

/* Sizes the table for max_fds descriptors (0: from RLIMIT_NOFILE).
 * Returns 0, or -1 (ENOMEM): nothing will be tracked. */
int ps_fdtable_init(size_t max_fds);

/* Descriptors the table can hold. */
size_t ps_fdtable_capacity(void);

/* Chunks allocated so far (tests observe growth). */
size_t ps_fdtable_chunks_in_use(void);

/* The fast path: untracked fds cost this and nothing else. */
static inline struct ps_conn *ps_fd_get(int fd)
{
	size_t i = (unsigned)fd >> PS_FD_CHUNK_SHIFT;
	/* acquire pairs with init's release: ps_fd_chunks is valid once nchunks is */
	if (__builtin_expect(i >= __atomic_load_n(&ps_fd_nchunks, __ATOMIC_ACQUIRE), 0))
		return NULL;
	struct ps_fd_chunk *ch = __atomic_load_n(&ps_fd_chunks[i], __ATOMIC_ACQUIRE);
	if (!ch)
		return NULL;
	return __atomic_load_n(&ch->slot[fd & (PS_FD_CHUNK - 1)], __ATOMIC_ACQUIRE);
}

/* The record for fd as the program's own descriptor: NULL for untracked
 * fds and for the shim's hidden descriptors (which the program never asked
 * for, but may reach with a close-everything loop). */
static inline struct ps_conn *ps_fd_program(int fd)
{
	struct ps_conn *c = ps_fd_get(fd);
	return c && __atomic_load_n(&c->fd, __ATOMIC_RELAXED) == fd ? c : NULL;
}

/* Stores c at fd, returning what was there in *old.  Returns -1 (EBADF past
 * the table, ENOMEM) if the fd cannot be tracked. */
int ps_fd_swap(int fd, struct ps_conn *c, struct ps_conn **old);

/* Replaces expect with desired; false if fd no longer maps to expect. */
bool ps_fd_cas(int fd, struct ps_conn *expect, struct ps_conn *desired);

/* Calls fn for every non-NULL slot (fork handling). Not atomic as a whole. */
void ps_fd_foreach(void (*fn)(int fd, struct ps_conn *c, void *arg), void *arg);

/* Empties every slot without looking at the records (a forked child). */
void ps_fdtable_clear(void);

#endif
