/* Owns the fd table.  Lock-free: slots and chunk pointers are only changed
 * with atomic exchange / CAS; readers use acquire loads. */
#include "fdtable.h"
#include "mem.h"

#include <errno.h>
#include <sys/resource.h>

#define MAX_TRACKED_FDS (1u << 24)

struct ps_fd_chunk **ps_fd_chunks;
size_t ps_fd_nchunks;
static size_t chunks_in_use;

int ps_fdtable_init(size_t max_fds)
{
	if (__atomic_load_n(&ps_fd_nchunks, __ATOMIC_ACQUIRE))
		return 0;
	if (max_fds == 0) {
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_max == RLIM_INFINITY ||
		    rl.rlim_max > MAX_TRACKED_FDS)
			max_fds = MAX_TRACKED_FDS;
		else
			max_fds = rl.rlim_max;
	}
	size_t n = (max_fds + PS_FD_CHUNK - 1) / PS_FD_CHUNK;
	struct ps_fd_chunk **top = ps_mem_alloc(n * sizeof *top);
	if (!top) {
		errno = ENOMEM;
		return -1;
	}
	ps_fd_chunks = top;
	__atomic_store_n(&ps_fd_nchunks, n, __ATOMIC_RELEASE);
	return 0;
}

size_t ps_fdtable_capacity(void) { return __atomic_load_n(&ps_fd_nchunks, __ATOMIC_ACQUIRE) * PS_FD_CHUNK; }

size_t ps_fdtable_chunks_in_use(void) { return __atomic_load_n(&chunks_in_use, __ATOMIC_RELAXED); }

static struct ps_fd_chunk *chunk_for(int fd, bool create)
{
	size_t i = (unsigned)fd >> PS_FD_CHUNK_SHIFT;
	if (fd < 0 || i >= __atomic_load_n(&ps_fd_nchunks, __ATOMIC_ACQUIRE)) {
		errno = EBADF;
		return NULL;
	}
	struct ps_fd_chunk *ch = __atomic_load_n(&ps_fd_chunks[i], __ATOMIC_ACQUIRE);
	if (ch || !create)
		return ch;
	struct ps_fd_chunk *fresh = ps_mem_alloc(sizeof *fresh);
	if (!fresh) {
		errno = ENOMEM;
		return NULL;
	}
	if (__atomic_compare_exchange_n(&ps_fd_chunks[i], &ch, fresh, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		__atomic_fetch_add(&chunks_in_use, 1, __ATOMIC_RELAXED);
		return fresh;
	}
	ps_mem_free(fresh, sizeof *fresh); /* another thread published first: use theirs */
	return ch;
}

int ps_fd_swap(int fd, struct ps_conn *c, struct ps_conn **old)
{
	struct ps_fd_chunk *ch = chunk_for(fd, c != NULL);
	if (!ch) {
		*old = NULL;
		return c ? -1 : 0;
	}
	*old = __atomic_exchange_n(&ch->slot[fd & (PS_FD_CHUNK - 1)], c, __ATOMIC_ACQ_REL);
	return 0;
}

bool ps_fd_cas(int fd, struct ps_conn *expect, struct ps_conn *desired)
{
	struct ps_fd_chunk *ch = chunk_for(fd, desired != NULL);
	if (!ch)
		return expect == NULL && desired == NULL;
	return __atomic_compare_exchange_n(&ch->slot[fd & (PS_FD_CHUNK - 1)], &expect, desired,
					   false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void ps_fd_foreach(void (*fn)(int fd, struct ps_conn *c, void *arg), void *arg)
{
	for (size_t i = 0; i < ps_fd_nchunks; i++) {
		struct ps_fd_chunk *ch = __atomic_load_n(&ps_fd_chunks[i], __ATOMIC_ACQUIRE);
		if (!ch)
			continue;
		for (unsigned j = 0; j < PS_FD_CHUNK; j++) {
			struct ps_conn *c = __atomic_load_n(&ch->slot[j], __ATOMIC_ACQUIRE);
			if (c)
				fn((int)(i * PS_FD_CHUNK + j), c, arg);
		}
	}
}

void ps_fdtable_clear(void)
{
	for (size_t i = 0; i < ps_fd_nchunks; i++) {
		struct ps_fd_chunk *ch = __atomic_load_n(&ps_fd_chunks[i], __ATOMIC_ACQUIRE);
		if (ch)
			for (unsigned j = 0; j < PS_FD_CHUNK; j++)
				__atomic_store_n(&ch->slot[j], NULL, __ATOMIC_RELEASE);
	}
}
