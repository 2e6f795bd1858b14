/* fdtable.c: the lock-free fd -> record map.  The table is process-global;
 * Criterion runs every test in its own process, so each test inits it. */
#include "fdtable.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <criterion/criterion.h>

static struct ps_conn recs[8];
#define A (&recs[0])
#define B (&recs[1])
#define C (&recs[2])

static void init_8192(void) { cr_assert_eq(ps_fdtable_init(8192), 0); }

Test(fdtable, init_sizes_capacity_in_chunks)
{
	cr_assert_eq(ps_fdtable_capacity(), 0, "nothing before init");
	cr_assert_null(ps_fd_get(3), "get before init is NULL");
	cr_assert_eq(ps_fdtable_init(1000), 0);
	cr_assert_eq(ps_fdtable_capacity(), PS_FD_CHUNK, "rounded up to whole chunks");
	cr_assert_eq(ps_fdtable_chunks_in_use(), 0, "chunks are allocated on first use");
	/* idempotent: a second init keeps the table */
	cr_assert_eq(ps_fdtable_init(8192), 0);
	cr_assert_eq(ps_fdtable_capacity(), PS_FD_CHUNK);
}

Test(fdtable, swap_get_returns_previous)
{
	init_8192();
	struct ps_conn *old = (struct ps_conn *)1;
	cr_assert_null(ps_fd_get(7));
	cr_assert_eq(ps_fd_swap(7, A, &old), 0);
	cr_assert_null(old);
	cr_assert_eq(ps_fd_get(7), A);
	cr_assert_eq(ps_fd_swap(7, B, &old), 0);
	cr_assert_eq(old, A);
	cr_assert_eq(ps_fd_get(7), B);
	cr_assert_eq(ps_fd_swap(7, NULL, &old), 0);
	cr_assert_eq(old, B);
	cr_assert_null(ps_fd_get(7));
	cr_assert_null(ps_fd_get(6), "neighbours untouched");
	cr_assert_null(ps_fd_get(8));
}

Test(fdtable, cas_semantics)
{
	init_8192();
	cr_assert(ps_fd_cas(9, NULL, A), "empty slot takes a record");
	cr_assert_eq(ps_fd_get(9), A);
	cr_assert_not(ps_fd_cas(9, NULL, B), "slot is no longer empty");
	cr_assert_eq(ps_fd_get(9), A);
	cr_assert_not(ps_fd_cas(9, C, B), "wrong expected value");
	cr_assert_eq(ps_fd_get(9), A);
	cr_assert(ps_fd_cas(9, A, B));
	cr_assert_eq(ps_fd_get(9), B);
	cr_assert(ps_fd_cas(9, B, NULL));
	cr_assert_null(ps_fd_get(9));
	/* clearing an untouched chunk: nothing there, so expecting NULL holds */
	cr_assert(ps_fd_cas(4000, NULL, NULL));
	cr_assert_not(ps_fd_cas(4000, A, NULL));
	cr_assert_eq(ps_fdtable_chunks_in_use(), 1, "a NULL store allocates no chunk");
}

Test(fdtable, beyond_capacity)
{
	init_8192();
	struct ps_conn *old = (struct ps_conn *)1;
	cr_assert_null(ps_fd_get(8192));
	cr_assert_null(ps_fd_get(1 << 30));
	errno = 0;
	cr_assert_eq(ps_fd_swap(8192, A, &old), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert_null(old);
	cr_assert_null(ps_fd_get(8192));
	cr_assert_not(ps_fd_cas(8192, NULL, A));
	/* the last slot that fits works */
	cr_assert_eq(ps_fd_swap(8191, A, &old), 0);
	cr_assert_eq(ps_fd_get(8191), A);
}

Test(fdtable, negative_fd)
{
	init_8192();
	struct ps_conn *old = (struct ps_conn *)1;
	cr_assert_null(ps_fd_get(-1));
	cr_assert_null(ps_fd_get(-1024));
	errno = 0;
	cr_assert_eq(ps_fd_swap(-1, A, &old), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert_null(old);
	cr_assert_eq(ps_fd_swap(-1, NULL, &old), 0, "untracking an untrackable fd is a no-op");
	cr_assert_not(ps_fd_cas(-1, NULL, A));
	cr_assert_eq(ps_fdtable_chunks_in_use(), 0);
}

Test(fdtable, chunks_grow_only_for_new_chunks)
{
	init_8192();
	struct ps_conn *old;
	cr_assert_eq(ps_fdtable_chunks_in_use(), 0);
	cr_assert_eq(ps_fd_swap(5, A, &old), 0);
	cr_assert_eq(ps_fdtable_chunks_in_use(), 1);
	cr_assert_eq(ps_fd_swap(6, B, &old), 0);
	cr_assert_eq(ps_fd_swap(1023, B, &old), 0);
	cr_assert_eq(ps_fdtable_chunks_in_use(), 1, "same chunk: no growth");
	cr_assert_eq(ps_fd_swap(5000, C, &old), 0);
	cr_assert_eq(ps_fdtable_chunks_in_use(), 2, "a far fd allocates its chunk");
	for (int i = 0; i < 50; i++)
		cr_assert_eq(ps_fd_swap(5000 + (i % 24), C, &old), 0);
	cr_assert_eq(ps_fdtable_chunks_in_use(), 2, "repeated sets in one chunk allocate nothing");
	cr_assert_eq(ps_fd_get(5000), C);
	cr_assert_eq(ps_fd_get(5), A);
	cr_assert_null(ps_fd_get(4999));
	cr_assert_null(ps_fd_get(3000), "a chunk in between stays unallocated");
}

struct visit {
	int fds[16];
	struct ps_conn *recs[16];
	int n;
};

static void visitor(int fd, struct ps_conn *c, void *arg)
{
	struct visit *v = arg;
	cr_assert_lt(v->n, 16);
	v->fds[v->n] = fd;
	v->recs[v->n] = c;
	v->n++;
}

Test(fdtable, foreach_visits_exactly_set_slots)
{
	init_8192();
	struct ps_conn *old;
	cr_assert_eq(ps_fd_swap(3, A, &old), 0);
	cr_assert_eq(ps_fd_swap(1024, B, &old), 0);
	cr_assert_eq(ps_fd_swap(8191, C, &old), 0);
	cr_assert_eq(ps_fd_swap(4, A, &old), 0);
	cr_assert_eq(ps_fd_swap(4, NULL, &old), 0); /* set then cleared: not visited */
	struct visit v = { .n = 0 };
	ps_fd_foreach(visitor, &v);
	cr_assert_eq(v.n, 3);
	cr_assert_eq(v.fds[0], 3);
	cr_assert_eq(v.recs[0], A);
	cr_assert_eq(v.fds[1], 1024);
	cr_assert_eq(v.recs[1], B);
	cr_assert_eq(v.fds[2], 8191);
	cr_assert_eq(v.recs[2], C);
}

Test(fdtable, clear_empties_every_slot)
{
	init_8192();
	struct ps_conn *old;
	cr_assert_eq(ps_fd_swap(3, A, &old), 0);
	cr_assert_eq(ps_fd_swap(5000, B, &old), 0);
	ps_fdtable_clear();
	cr_assert_null(ps_fd_get(3));
	cr_assert_null(ps_fd_get(5000));
	struct visit v = { .n = 0 };
	ps_fd_foreach(visitor, &v);
	cr_assert_eq(v.n, 0);
	cr_assert_eq(ps_fd_swap(3, C, &old), 0, "usable after clear");
	cr_assert_eq(ps_fd_get(3), C);
}

#define THREADS 4
#define PER_THREAD_FDS 2000
#define ROUNDS 20
static struct ps_conn trecs[THREADS][2];
static pthread_barrier_t start;

static void *swapper(void *arg)
{
	int t = (int)(long)arg;
	pthread_barrier_wait(&start);
	for (int r = 0; r < ROUNDS; r++) {
		/* interleaved fds: all threads hit the same chunks, and race to create them */
		for (int i = 0; i < PER_THREAD_FDS; i++) {
			int fd = i * THREADS + t;
			struct ps_conn *want = &trecs[t][r & 1], *prev = r ? &trecs[t][(r - 1) & 1] : NULL;
			struct ps_conn *old;
			if (ps_fd_swap(fd, want, &old) != 0 || old != prev)
				return (void *)1;
		}
	}
	return NULL;
}

Test(fdtable, parallel_swaps_lose_no_update)
{
	init_8192();
	pthread_t th[THREADS];
	cr_assert_eq(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (long t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, swapper, (void *)t), 0);
	for (int t = 0; t < THREADS; t++) {
		void *ret;
		pthread_join(th[t], &ret);
		cr_assert_null(ret, "thread %d saw a lost or foreign update", t);
	}
	for (int i = 0; i < PER_THREAD_FDS * THREADS; i++) {
		int t = i % THREADS;
		cr_assert_eq(ps_fd_get(i), &trecs[t][(ROUNDS - 1) & 1], "fd %d", i);
	}
	/* 8000 fds span 8 chunks, each created exactly once despite the race */
	cr_assert_eq(ps_fdtable_chunks_in_use(), (PER_THREAD_FDS * THREADS + PS_FD_CHUNK - 1) / PS_FD_CHUNK);
}

static int cas_counter_fd = 77;
static struct ps_conn ring[64];

static void *cas_stepper(void *arg)
{
	long *done = arg;
	pthread_barrier_wait(&start);
	for (int n = 0; n < 20000;) {
		struct ps_conn *cur = ps_fd_get(cas_counter_fd);
		long idx = cur - ring;
		if (ps_fd_cas(cas_counter_fd, cur, &ring[(idx + 1) % 64]))
			n++, (*done)++;
	}
	return NULL;
}

Test(fdtable, parallel_cas_steps_are_never_lost)
{
	init_8192();
	struct ps_conn *old;
	cr_assert_eq(ps_fd_swap(cas_counter_fd, &ring[0], &old), 0);
	pthread_t th[THREADS];
	long done[THREADS] = { 0 };
	cr_assert_eq(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (int t = 0; t < THREADS; t++)
		cr_assert_eq(pthread_create(&th[t], NULL, cas_stepper, &done[t]), 0);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	/* 4 x 20000 successful steps around a ring of 64 */
	cr_assert_eq(ps_fd_get(cas_counter_fd), &ring[(THREADS * 20000) % 64]);
}
