/* Owns the reaper thread, started by the first real connect of a poolable
 * connection (the program's own flow, not a close() that may run in a
 * signal handler).  It waits on cond with the pool lock, until
 * the oldest idle connection expires, or (pool empty) until a checkin wakes
 * it; each pass closes exactly what has expired, so its cost follows what
 * expires, not the pool's size. */
#include "clock.h"
#include "config.h"
#include "state.h"
#include "stats.h"
#include "park.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <time.h>

static pthread_cond_t cond;
static bool started;     /* under the pool lock */
static bool waiting_empty; /* the thread sleeps until a checkin: under the pool lock; read atomically by parking */
static uint64_t wakes_at;  /* when the thread wakes next (UINT64_MAX: not planned); atomic */

static void *reaper_main(void *arg)
{
	(void)arg;
	bool quiet = false; /* the last pass found nothing to expire */
	ps_lock();
	for (;;) {
		uint64_t now = ps_now_ns();
		struct ps_conn *list = ps_pool_reap(&ps_g.pool, now, ps_config.idle_timeout_ns);
		ps_take_list_locked(list);
		if (list) {
			ps_unlock();
			for (struct ps_conn *c = list; c; c = c->free_next)
				ps_stat_inc(PS_ST_REAPED);
			ps_terminate(list);
			ps_lock();
			continue;
		}
		uint64_t next = ps_pool_next_expiry(&ps_g.pool, ps_config.idle_timeout_ns);
		/* parked connections (park.h) are not in the pool: walked without
		 * the lock, since closing them makes syscalls */
		ps_unlock();
		uint64_t parked = ps_park_reap(now);
		ps_lock();
		if (parked < next)
			next = parked;
		/* nothing to expire: while connections are being parked and
		 * taken again, one idle timeout of looking costs a wake-up, where
		 * sleeping until a checkin would cost each park a syscall */
		if (next == UINT64_MAX && !quiet) {
			quiet = true;
			next = now + ps_config.idle_timeout_ns;
		} else if (next != UINT64_MAX) {
			quiet = false;
		}
		__atomic_store_n(&wakes_at, next, __ATOMIC_RELAXED);
		if (next == UINT64_MAX) {
			__atomic_store_n(&waiting_empty, true, __ATOMIC_RELAXED);
			/* a park that came between the walk and here has kicked
			 * no one: look again before sleeping */
			if (__atomic_load_n(&ps_parked_count, __ATOMIC_RELAXED) == 0)
				pthread_cond_wait(&cond, &ps_g.lock);
			__atomic_store_n(&waiting_empty, false, __ATOMIC_RELAXED);
		} else {
			/* the condvar runs on CLOCK_MONOTONIC, as ps_now_ns does */
			uint64_t wait = next - now;
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t at = (uint64_t)ts.tv_sec * PS_NS_PER_SEC + (uint64_t)ts.tv_nsec + wait;
			ts.tv_sec = (time_t)(at / PS_NS_PER_SEC);
			ts.tv_nsec = (long)(at % PS_NS_PER_SEC);
			pthread_cond_timedwait(&cond, &ps_g.lock, &ts);
		}
	}
	return NULL;
}

static void start_locked(void)
{
	pthread_condattr_t ca;
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t tid;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	/* the program's signals must never be delivered on our thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	__atomic_store_n(&started, pthread_create(&tid, &attr, reaper_main, NULL) == 0,
			 __ATOMIC_RELAXED);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
}

void ps_reaper_start(void)
{
	if (!ps_g.reaper || __atomic_load_n(&started, __ATOMIC_RELAXED) || ps_lock() < 0)
		return;
	if (!started)
		start_locked();
	ps_unlock();
}

void ps_reaper_kick(void)
{
	/* no thread is ever started from here: close() may run in a signal
	 * handler, and creating a thread allocates */
	if (!ps_g.reaper || ps_lock() < 0)
		return;
	if (started && waiting_empty)
		pthread_cond_signal(&cond);
	ps_unlock();
}

void ps_reaper_kick_parked(uint64_t expiry)
{
	/* the hit path: a syscall only when the thread would sleep past this */
	if (!ps_g.reaper || !__atomic_load_n(&started, __ATOMIC_RELAXED) ||
	    (!__atomic_load_n(&waiting_empty, __ATOMIC_RELAXED) &&
	     expiry >= __atomic_load_n(&wakes_at, __ATOMIC_RELAXED)))
		return;
	if (ps_lock() < 0)
		return;
	pthread_cond_signal(&cond);
	ps_unlock();
}

void ps_reaper_forget(void)
{
	started = false;
	waiting_empty = false;
	wakes_at = 0;
}
