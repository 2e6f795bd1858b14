/* Owns ps_g: the lock, the record allocator, the unsafe destination set and
 * fork handling.  See state.h for what the lock guards. */
#include "state.h"
#include "config.h"
#include "fdtable.h"
#include "lifecycle.h"
#include "park.h"
#include "log.h"
#include "probe.h"
#include "ready.h"
#include "stats.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>

struct ps_unsafe {
	struct ps_key key;
	UT_hash_handle hh;
};

struct ps_global ps_g = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.conn_slab = PS_SLAB_INIT(struct ps_conn),
	.replay_slab = PS_SLAB_INIT(struct ps_replay),
	.unsafe_slab = PS_SLAB_INIT(struct ps_unsafe),
};

/* initial-exec: no allocation on first access, safe in a signal handler */
static __thread int lock_depth __attribute__((tls_model("initial-exec")));

int ps_lock(void)
{
	if (lock_depth)
		return -1;
	lock_depth = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST); /* a handler must see the flag before we block */
	pthread_mutex_lock(&ps_g.lock);
	return 0;
}

void ps_unlock(void)
{
	pthread_mutex_unlock(&ps_g.lock);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	lock_depth = 0;
}


static int hidden_floor(unsigned max_idle)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return FD_SETSIZE;
	/* Above select()'s range when the limit allows, else as high as the pool
	 * could need, so the program's low numbers stay free. */
	if (rl.rlim_cur >= (rlim_t)FD_SETSIZE + max_idle + 64)
		return FD_SETSIZE;
	long floor = (long)rl.rlim_cur - (long)max_idle - 16;
	return floor < 64 ? 64 : (int)floor;
}

/* The kernel grows a process's descriptor table on demand; growing it while
 * other threads share it (the reaper, a resolver thread) waits for an RCU
 * grace period: 5-15 ms on the first hidden descriptor, a short-lived
 * curl's whole run time again.  Grown now, from the constructor, with one
 * thread, it costs microseconds. */
static void grow_fd_table(int floor)
{
	int s = ps_sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	int high = ps_sys.fcntl(s, F_DUPFD_CLOEXEC, floor);
	if (high >= 0)
		ps_sys.close(high);
	ps_sys.close(s);
}

int ps_state_init(void)
{
	if (ps_g.ready)
		return 0;
	if (ps_fdtable_init(0) < 0)
		return -1;
	ps_pool_init(&ps_g.pool, ps_config.max_idle_per_host, ps_config.max_idle);
	ps_g.hidden_floor = hidden_floor(ps_config.max_idle);
	grow_fd_table(ps_g.hidden_floor);
	struct ps_fork_page *page = ps_mem_alloc(4096);
	if (page && madvise(page, 4096, MADV_WIPEONFORK) == 0) {
		page->alive = 1;
		ps_g.fork_page = page;
	}
	ps_g.ready = true;
	return 0;
}

void ps_state_update_floor(void)
{
	__atomic_store_n(&ps_g.hidden_floor, hidden_floor(ps_config.max_idle), __ATOMIC_RELAXED);
}

static void drain_orphans_locked(void)
{
	struct ps_replay *r = __atomic_exchange_n(&ps_g.spare_replays, NULL, __ATOMIC_ACQ_REL);
	while (r) {
		struct ps_replay *next = r->slab_link;
		ps_slab_free(&ps_g.replay_slab, r);
		r = next;
	}
	struct ps_conn *c = __atomic_exchange_n(&ps_g.orphans, NULL, __ATOMIC_ACQ_REL);
	while (c) {
		struct ps_conn *next = c->free_next;
		ps_conn_free_locked(c);
		c = next;
	}
}

struct ps_conn *ps_conn_alloc_locked(void)
{
	drain_orphans_locked();
	struct ps_conn *c = ps_g.conn_slab.free;
	/* inflight and seq survive reuse: a stale reader may still be paired
	 * inc/dec, and seq must move on from the last incarnation */
	int inflight = c ? __atomic_load_n(&c->inflight, __ATOMIC_ACQUIRE) : 0;
	uint32_t seq = c ? __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE) : 0;
	c = ps_slab_alloc(&ps_g.conn_slab);
	if (c) {
		__atomic_store_n(&c->inflight, inflight, __ATOMIC_RELEASE);
		__atomic_store_n(&c->seq, seq + 1 ? seq + 1 : 1, __ATOMIC_RELEASE); /* 0: "none" */
		c->fd = -1;
		c->hidden = -1;
		c->generation = ps_g.generation;
	}
	return c;
}

void ps_conn_free_locked(struct ps_conn *c)
{
	__atomic_store_n(&c->state, PS_FREE, __ATOMIC_RELEASE);
	if (c->replay) {
		ps_slab_free(&ps_g.replay_slab, c->replay);
		c->replay = NULL;
	}
	ps_slab_free(&ps_g.conn_slab, c);
}

struct ps_replay *ps_replay_alloc(void)
{
	if (ps_lock() < 0)
		return NULL;
	struct ps_replay *r = ps_slab_alloc_dirty(&ps_g.replay_slab);
	ps_unlock();
	return r;
}

void ps_replay_free(struct ps_replay *r)
{
	if (!r)
		return;
	if (ps_lock() < 0) {
		/* a signal handler interrupted the holder: keep it, not lose it */
		struct ps_replay *head = __atomic_load_n(&ps_g.spare_replays, __ATOMIC_ACQUIRE);
		do
			r->slab_link = head;
		while (!__atomic_compare_exchange_n(&ps_g.spare_replays, &head, r, true,
						    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
		return;
	}
	ps_slab_free(&ps_g.replay_slab, r);
	ps_unlock();
}

void ps_conn_free(struct ps_conn *c)
{
	if (ps_lock() == 0) {
		ps_conn_free_locked(c);
		ps_unlock();
		return;
	}
	struct ps_conn *head = __atomic_load_n(&ps_g.orphans, __ATOMIC_ACQUIRE);
	do
		c->free_next = head;
	while (!__atomic_compare_exchange_n(&ps_g.orphans, &head, c, true, __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE));
}

size_t ps_conn_live(void) { return ps_g.conn_slab.allocated; }

static void dest_only(struct ps_key *out, const struct ps_key *k)
{
	memset(out, 0, sizeof *out);
	out->family = k->family;
	out->port = k->port;
	out->scope_id = k->scope_id;
	out->path_len = k->path_len;
	memcpy(out->addr, k->addr, sizeof out->addr);
}

bool ps_unsafe_has_locked(const struct ps_key *k)
{
	struct ps_key d;
	struct ps_unsafe *u = NULL;
	if (!ps_g.unsafe)
		return false;
	dest_only(&d, k);
	HASH_FIND(hh, ps_g.unsafe, &d, sizeof d, u);
	return u != NULL;
}

void ps_unsafe_add_locked(const struct ps_key *k)
{
	if (ps_unsafe_has_locked(k))
		return;
	if (ps_g.n_unsafe >= PS_MAX_UNSAFE)
		return; /* the connection itself is still refused; we just stop remembering */
	struct ps_unsafe *u = ps_slab_alloc(&ps_g.unsafe_slab);
	if (!u)
		return;
	dest_only(&u->key, k);
	int oom = 0;
#undef uthash_nonfatal_oom
#define uthash_nonfatal_oom(obj) (oom = 1)
	HASH_ADD(hh, ps_g.unsafe, key, sizeof u->key, u);
	if (oom) {
		ps_slab_free(&ps_g.unsafe_slab, u);
		return;
	}
	__atomic_store_n(&ps_g.n_unsafe, ps_g.n_unsafe + 1, __ATOMIC_RELEASE);
	char buf[160];
	ps_key_format(k, buf, sizeof buf);
	PS_LOG_INFO("destination %s marked unsafe for pooling", buf);
}

bool ps_unsafe_has(const struct ps_key *k)
{
	/* the fast path asks at every hit: no lock while the set is empty */
	if (__atomic_load_n(&ps_g.n_unsafe, __ATOMIC_ACQUIRE) == 0)
		return false;
	if (ps_lock() < 0)
		return true; /* cannot look: assume the worst */
	bool r = ps_unsafe_has_locked(k);
	ps_unlock();
	return r;
}

void ps_unsafe_add(const struct ps_key *k)
{
	if (ps_lock() < 0)
		return;
	ps_unsafe_add_locked(k);
	ps_unlock();
}

size_t ps_unsafe_copy_locked(struct ps_key *out, size_t max)
{
	size_t n = 0;
	for (struct ps_unsafe *u = ps_g.unsafe; u && n < max; u = u->hh.next)
		out[n++] = u->key;
	return n;
}

bool ps_release_hidden(struct ps_conn *c)
{
	ps_life_mark_hidden_closed(c);
	/* an idle one leaves the pool now; one in transit is ended by its
	 * owner, who finds the flag */
	if (ps_lock() < 0)
		return false;
	bool idle = ps_life_take(c);
	if (idle)
		ps_pool_remove(&ps_g.pool, c);
	ps_unlock();
	if (idle) {
		c->hidden = -1; /* the caller's call has the number now */
		ps_life_end(c);
	}
	return idle;
}

/* The slot at number held old, and now holds something else: a descriptor
 * closed behind the shim's back and reused (stale), or one a hooked call is
 * replacing (closing).  Only bookkeeping: the number is not ours to close. */
static void release(struct ps_conn *old, int number, bool stale)
{
	if (!old)
		return;
	if (number == old->hidden) {
		if (stale)
			ps_stat_inc(PS_ST_IDENTITY);
		ps_release_hidden(old);
	} else if (number == old->fd) {
		enum ps_claim claim = ps_life_claim(old, false);
		if (claim == PS_CLAIM_FRESH || claim == PS_CLAIM_ACTIVE || claim == PS_CLAIM_WARM) {
			__atomic_store_n(&old->fd, -1, __ATOMIC_RELAXED);
			ps_life_end(old);
		} else if (claim == PS_CLAIM_PARKED) {
			ps_park_release(old); /* the number was (or is being) closed for real */
		}
	}
}

void ps_release_stale(struct ps_conn *old, int number) { release(old, number, true); }
void ps_release_closing(struct ps_conn *old, int number) { release(old, number, false); }

void ps_take_list_locked(struct ps_conn *list)
{
	for (; list; list = list->free_next)
		ps_life_take(list);
}

void ps_terminate(struct ps_conn *list)
{
	while (list) {
		struct ps_conn *c = list;
		list = c->free_next;
		ps_life_end(c);
	}
}

static void taint_shared(int fd, struct ps_conn *c, void *arg)
{
	(void)fd;
	(void)arg;
	int st = ps_conn_state(c);
	/* a parked number's copy is closed in the child at once (park.h) */
	if (fd == c->fd && st != PS_PARKED && st != PS_TAKEN)
		ps_conn_add_taint(c, PS_T_SHARED);
}

void ps_fork_prepare(void)
{
	/* A fork from a handler that interrupted the holder cannot wait for
	 * the lock; the child then starts without a pool either way. */
	if (ps_lock() == 0)
		lock_depth = 2;
}

void ps_fork_parent(void)
{
	if (!ps_g.ready) {
		if (lock_depth == 2)
			ps_unlock();
		return;
	}
	ps_fd_foreach(taint_shared, NULL);
	if (lock_depth == 2)
		ps_unlock();
}

static void close_hidden_in_child(int fd, struct ps_conn *c, void *arg)
{
	(void)arg;
	if (fd == c->hidden) {
		/* the parent keeps its copy: closing ours sends no FIN */
		if (ps_probe_same(fd, c->cookie))
			ps_sys.close(fd);
		c->hidden = -1;
		ps_fd_cas(fd, c, NULL);
	} else if (!ps_park_forget_in_child(fd, c)) {
		ps_conn_add_taint(c, PS_T_SHARED);
	}
}

void ps_fork_child(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	memcpy(&ps_g.lock, &fresh, sizeof fresh);
	lock_depth = 0;
	if (!ps_g.ready)
		return;
	if (ps_g.fork_page)
		ps_g.fork_page->alive = 1;
	ps_reaper_forget();
	ps_g.generation++;
	ps_fd_foreach(close_hidden_in_child, NULL);
	/* only this thread exists in the child: the lock is not needed */
	struct ps_conn *c = ps_pool_drain(&ps_g.pool);
	while (c) {
		struct ps_conn *next = c->free_next;
		ps_conn_free_locked(c); /* its hidden copy was closed above */
		c = next;
	}
}

static void abandon_in_raw_child(int fd, struct ps_conn *c, void *arg)
{
	(void)arg;
	/* an idle record's hidden fd and cookie do not change while it is
	 * idle, so they are safe to read even if a list update was cut short */
	int st = ps_conn_state(c);
	bool parked = fd == c->fd && (st == PS_PARKED || st == PS_TAKEN);
	if ((fd == c->hidden || parked) && ps_probe_same(fd, c->cookie))
		ps_sys.close(fd); /* the parent keeps its copy: no FIN */
}

/* _Fork and raw clone run no atfork handler, so the parent's other threads
 * may have been anywhere, the lock held and a pool list or slab half
 * updated.  The child believes none of it: it closes its copies of the
 * hidden descriptors through the fd table (lock-free, one slot at a time),
 * then starts over with an empty table, pool and record slab.  The old
 * records are abandoned; their program fds are simply no longer tracked. */
void ps_after_raw_fork(void)
{
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	struct ps_slab conns = PS_SLAB_INIT(struct ps_conn);
	struct ps_slab unsafe = PS_SLAB_INIT(struct ps_unsafe);
	memcpy(&ps_g.lock, &fresh, sizeof fresh);
	lock_depth = 0;
	ps_fd_foreach(abandon_in_raw_child, NULL);
	ps_fdtable_clear();
	ps_pool_init(&ps_g.pool, ps_config.max_idle_per_host, ps_config.max_idle);
	ps_g.conn_slab = conns;
	ps_g.unsafe_slab = unsafe;
	ps_g.unsafe = NULL;
	ps_g.n_unsafe = 0;
	ps_g.orphans = NULL;
	ps_g.generation++;
	__atomic_store_n(&ps_parked_count, 0, __ATOMIC_RELAXED);
	ps_reaper_forget();
	ps_unused_reset();
	ps_g.fork_page->alive = 1;
}
