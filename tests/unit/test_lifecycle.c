/* lifecycle.c: the state machine itself.  Each transition succeeds only
 * from its precondition state and changes nothing otherwise; a record ends
 * in ps_life_end and is freed once the last I/O call inside it has left.
 * Records are made by ps_socket() on real sockets; states past FRESH are
 * reached through the transitions alone (no connection is needed to test
 * the machine). */
#include "config.h"
#include "events.h"
#include "fdtable.h"
#include "helpers.h"
#include "lifecycle.h"
#include "state.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

static void setup(void)
{
	ps_config_parse(&ps_config, t_env_empty);
	ps_stats_reset();
	cr_assert_eq(ps_state_init(), 0);
	t_libc_fill();
}

TestSuite(lifecycle, .init = setup);

static int word(struct ps_conn *c) { return __atomic_load_n(&c->state, __ATOMIC_SEQ_CST); }
static int inflight(struct ps_conn *c) { return __atomic_load_n(&c->inflight, __ATOMIC_SEQ_CST); }

static struct ps_conn *fresh(int *fd_out)
{
	int fd = ps_socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
	struct ps_conn *c = ps_fd_get(fd);
	cr_assert_not_null(c);
	cr_assert_eq(word(c), PS_FRESH);
	cr_assert_eq(c->fd, fd);
	*fd_out = fd;
	return c;
}

/* FRESH -> CONNECTING -> ACTIVE: what the program's own connect does */
static struct ps_conn *active(int *fd_out)
{
	struct ps_conn *c = fresh(fd_out);
	cr_assert(ps_life_begin_connect(c));
	cr_assert(ps_life_end_connect(c, true));
	cr_assert_eq(word(c), PS_ACTIVE);
	cr_assert_eq(inflight(c), 0);
	return c;
}

static struct ps_conn *in_checkin(int *fd_out)
{
	struct ps_conn *c = active(fd_out);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	cr_assert_eq(word(c), PS_CHECKIN);
	return c;
}

/* ---- the program's connect ---- */

Test(lifecycle, begin_connect_only_from_fresh)
{
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert(ps_life_begin_connect(c));
	cr_assert_eq(word(c), PS_CONNECTING);
	cr_assert_eq(inflight(c), 1, "CONNECTING holds an I/O reference");
	cr_assert_not(ps_life_begin_connect(c), "not from CONNECTING");
	cr_assert_not(ps_life_begin_checkout(c));
	cr_assert_eq(word(c), PS_CONNECTING);
	cr_assert_eq(inflight(c), 1, "a refused begin leaves no reference behind");
	cr_assert(ps_life_end_connect(c, false), "failed connect");
	cr_assert_eq(word(c), PS_FRESH);
	cr_assert_eq(inflight(c), 0);
	cr_assert(ps_life_begin_connect(c));
	cr_assert(ps_life_end_connect(c, true));
	cr_assert_eq(word(c), PS_ACTIVE);
	cr_assert_eq(inflight(c), 0);
	cr_assert_not(ps_life_begin_connect(c), "not from ACTIVE");
	cr_assert_eq(word(c), PS_ACTIVE);
	cr_assert_eq(inflight(c), 0);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	cr_assert_not(ps_life_begin_connect(c), "not from CHECKIN");
	cr_assert_eq(word(c), PS_CHECKIN);
	cr_assert_eq(inflight(c), 0);
	close(fd);
}

Test(lifecycle, end_connect_after_a_close_reports_it)
{
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert(ps_life_begin_connect(c));
	/* a close (another thread, a signal handler) while connect() runs */
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_FRESH);
	cr_assert_eq(word(c), PS_CHECKIN);
	cr_assert_not(ps_life_end_connect(c, true), "the close took the record meanwhile");
	cr_assert_eq(word(c), PS_CHECKIN, "end_connect does not undo the close");
	cr_assert_eq(inflight(c), 0, "but drops connect's reference");
	close(fd);
}

/* ---- checkout ---- */

Test(lifecycle, begin_checkout_only_from_fresh)
{
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert(ps_life_begin_checkout(c));
	cr_assert_eq(word(c), PS_CHECKOUT);
	cr_assert_not(ps_life_begin_checkout(c), "not from CHECKOUT");
	cr_assert_not(ps_life_begin_connect(c));
	cr_assert_eq(inflight(c), 0);
	cr_assert_eq(word(c), PS_CHECKOUT);
	cr_assert_not(ps_life_end_checkout(c, false), "no close pending");
	cr_assert_eq(word(c), PS_FRESH, "a miss goes back to FRESH");
	cr_assert(ps_life_begin_checkout(c));
	cr_assert_not(ps_life_end_checkout(c, true));
	cr_assert_eq(word(c), PS_ACTIVE, "a hit is ACTIVE");
	cr_assert_not(ps_life_begin_checkout(c), "not from ACTIVE");
	cr_assert_eq(word(c), PS_ACTIVE);
	/* end_checkout outside a checkout changes nothing */
	cr_assert_not(ps_life_end_checkout(c, false));
	cr_assert_eq(word(c), PS_ACTIVE);
	close(fd);
}

/* ---- reconnect ---- */

Test(lifecycle, begin_reconnect_only_from_active)
{
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert_not(ps_life_begin_reconnect(c), "not from FRESH");
	cr_assert_eq(word(c), PS_FRESH);
	cr_assert(ps_life_begin_connect(c));
	cr_assert_not(ps_life_begin_reconnect(c), "not from CONNECTING");
	cr_assert(ps_life_end_connect(c, true));
	cr_assert(ps_life_begin_reconnect(c));
	cr_assert_eq(word(c), PS_RECONNECTING);
	cr_assert_not(ps_life_begin_reconnect(c), "not from RECONNECTING");
	cr_assert_not(ps_life_end_reconnect(c));
	cr_assert_eq(word(c), PS_ACTIVE);
	cr_assert_not(ps_life_end_reconnect(c), "outside a reconnect: nothing");
	cr_assert_eq(word(c), PS_ACTIVE);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	cr_assert_not(ps_life_begin_reconnect(c), "not from CHECKIN");
	cr_assert_eq(word(c), PS_CHECKIN);
	close(fd);
}

/* ---- close ---- */

Test(lifecycle, claim_takes_fresh_connecting_and_active_to_checkin)
{
	int a, b, d;
	struct ps_conn *ca = fresh(&a);
	struct ps_conn *cb = fresh(&b);
	struct ps_conn *cd = active(&d);
	cr_assert(ps_life_begin_connect(cb));
	cr_assert_eq(ps_life_claim(ca, true), PS_CLAIM_FRESH);
	cr_assert_eq(word(ca), PS_CHECKIN);
	cr_assert_eq(ps_life_claim(cb, true), PS_CLAIM_FRESH, "CONNECTING: no connection to keep");
	cr_assert_eq(word(cb), PS_CHECKIN);
	cr_assert_eq(ps_life_claim(cd, true), PS_CLAIM_ACTIVE);
	cr_assert_eq(word(cd), PS_CHECKIN);
	/* a second close of the same record (a signal handler's) */
	cr_assert_eq(ps_life_claim(ca, true), PS_CLAIM_CLOSING);
	cr_assert_eq(ps_life_claim(cd, false), PS_CLAIM_CLOSING);
	cr_assert_eq(word(ca), PS_CHECKIN);
	cr_assert_eq(word(cd), PS_CHECKIN);
	cr_assert_not(ps_life_end_connect(cb, true));
	close(a);
	close(b);
	close(d);
}

Test(lifecycle, claim_without_defer_takes_fresh_and_active_too)
{
	int a, d;
	struct ps_conn *ca = fresh(&a);
	struct ps_conn *cd = active(&d);
	cr_assert_eq(ps_life_claim(ca, false), PS_CLAIM_FRESH);
	cr_assert_eq(ps_life_claim(cd, false), PS_CLAIM_ACTIVE);
	cr_assert_eq(word(ca), PS_CHECKIN);
	cr_assert_eq(word(cd), PS_CHECKIN);
	close(a);
	close(d);
}

Test(lifecycle, claim_during_checkout_is_deferred_to_its_end)
{
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert(ps_life_begin_checkout(c));
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_DEFERRED);
	cr_assert_eq(word(c), PS_CHECKOUT | PS_F_CLOSE_PENDING, "the close is left for the owner");
	cr_assert_eq(ps_conn_state(c), PS_CHECKOUT, "the owner keeps the record");
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_CLOSING, "closed twice: the second finds it gone");
	cr_assert_eq(word(c), PS_CHECKOUT | PS_F_CLOSE_PENDING);
	cr_assert(ps_life_end_checkout(c, true), "the owner must now make the close");
	cr_assert_eq(word(c), PS_ACTIVE, "in the end state, the flag cleared");
	/* and after a miss */
	int fd2;
	struct ps_conn *c2 = fresh(&fd2);
	cr_assert(ps_life_begin_checkout(c2));
	cr_assert_eq(ps_life_claim(c2, true), PS_CLAIM_DEFERRED);
	cr_assert(ps_life_end_checkout(c2, false));
	cr_assert_eq(word(c2), PS_FRESH);
	close(fd);
	close(fd2);
}

Test(lifecycle, claim_during_checkout_without_defer_leaves_it_to_the_owner)
{
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert(ps_life_begin_checkout(c));
	cr_assert_eq(ps_life_claim(c, false), PS_CLAIM_NONE, "dup2 onto it: pass through");
	cr_assert_eq(word(c), PS_CHECKOUT, "no flag left");
	cr_assert_not(ps_life_end_checkout(c, true));
	cr_assert_eq(word(c), PS_ACTIVE);
	close(fd);
}

Test(lifecycle, claim_during_reconnect_is_deferred_to_its_end)
{
	int fd;
	struct ps_conn *c = active(&fd);
	cr_assert(ps_life_begin_reconnect(c));
	cr_assert_eq(ps_life_claim(c, false), PS_CLAIM_NONE);
	cr_assert_eq(word(c), PS_RECONNECTING);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_DEFERRED);
	cr_assert_eq(word(c), PS_RECONNECTING | PS_F_CLOSE_PENDING);
	cr_assert_eq(ps_conn_state(c), PS_RECONNECTING);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_CLOSING);
	cr_assert(ps_life_end_reconnect(c), "the owner must now make the close");
	cr_assert_eq(word(c), PS_ACTIVE, "the flag cleared");
	/* the owner's close: an ordinary claim now */
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	close(fd);
}

/* ---- the pool ---- */

Test(lifecycle, pool_only_from_checkin_take_only_from_idle)
{
	int fd;
	struct ps_conn *a = active(&fd);
	cr_assert_not(ps_life_pool(a), "not from ACTIVE");
	cr_assert_not(ps_life_take(a), "not from ACTIVE");
	cr_assert_eq(word(a), PS_ACTIVE);
	cr_assert_eq(ps_life_claim(a, true), PS_CLAIM_ACTIVE);
	cr_assert_not(ps_life_take(a), "not from CHECKIN");
	cr_assert(ps_life_pool(a));
	cr_assert_eq(word(a), PS_IDLE);
	cr_assert_not(ps_life_pool(a), "not twice");
	cr_assert_eq(ps_life_claim(a, true), PS_CLAIM_NONE, "an idle record is not the program's");
	cr_assert_eq(word(a), PS_IDLE);
	cr_assert_not(ps_life_begin_connect(a));
	cr_assert_not(ps_life_begin_checkout(a));
	cr_assert_not(ps_life_begin_reconnect(a));
	cr_assert_eq(inflight(a), 0);
	cr_assert(ps_life_take(a));
	cr_assert_eq(word(a), PS_TAKEN);
	cr_assert_not(ps_life_take(a), "taken once");
	cr_assert_not(ps_life_pool(a), "not from TAKEN");
	cr_assert_eq(ps_life_claim(a, true), PS_CLAIM_NONE);
	cr_assert_eq(word(a), PS_TAKEN);
	close(fd);
}

Test(lifecycle, hidden_closed_flag_keeps_it_out_of_the_pool)
{
	int fd;
	struct ps_conn *c = in_checkin(&fd);
	cr_assert_not(ps_life_hidden_closed(c));
	ps_life_mark_hidden_closed(c);
	cr_assert(ps_life_hidden_closed(c));
	cr_assert_eq(ps_conn_state(c), PS_CHECKIN);
	cr_assert_not(ps_life_pool(c), "the program closed the hidden number");
	cr_assert_eq(word(c), PS_CHECKIN | PS_F_HIDDEN_CLOSED);
	/* an idle one can still be taken (to be ended), and keeps the flag */
	int fd2;
	struct ps_conn *c2 = in_checkin(&fd2);
	cr_assert(ps_life_pool(c2));
	ps_life_mark_hidden_closed(c2);
	cr_assert(ps_life_take(c2));
	cr_assert_eq(ps_conn_state(c2), PS_TAKEN);
	cr_assert(ps_life_hidden_closed(c2), "the taker must see it");
	close(fd);
	close(fd2);
}

/* ---- the end ---- */

Test(lifecycle, end_frees_at_once_when_no_io_is_inside)
{
	size_t base = ps_conn_live();
	int fd;
	struct ps_conn *c = fresh(&fd);
	cr_assert_eq(ps_conn_live(), base + 1);
	ps_life_end(c);
	cr_assert_eq(ps_conn_live(), base, "freed at once");
	cr_assert_eq(word(c), PS_FREE);
	cr_assert_null(ps_fd_get(fd), "its slot is cleared");
	cr_assert_geq(fcntl(fd, F_GETFD), 0, "the program's number is not the record's to close");
	/* from every owned state */
	struct ps_conn *a = in_checkin(&fd);
	ps_life_end(a);
	cr_assert_eq(word(a), PS_FREE);
	a = active(&fd);
	cr_assert(ps_life_begin_reconnect(a));
	ps_life_end(a);
	cr_assert_eq(word(a), PS_FREE);
	a = in_checkin(&fd);
	cr_assert(ps_life_pool(a));
	cr_assert(ps_life_take(a));
	ps_life_end(a);
	cr_assert_eq(word(a), PS_FREE);
	cr_assert_eq(ps_conn_live(), base);
}

Test(lifecycle, end_frees_only_when_the_last_io_leaves)
{
	size_t base = ps_conn_live();
	int fd;
	struct ps_conn *c = active(&fd);
	uint32_t seq = ps_life_io_enter(c, fd);
	cr_assert_neq(seq, 0);
	cr_assert_eq(ps_life_io_enter(c, fd), seq, "a second thread, the same incarnation");
	cr_assert_eq(inflight(c), 2);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	ps_life_end(c);
	cr_assert_eq(ps_conn_state(c), PS_DEAD);
	cr_assert_null(ps_fd_get(fd), "no new call can find it");
	cr_assert_eq(ps_life_io_enter(c, fd), 0, "nor enter it");
	cr_assert_eq(inflight(c), 2);
	cr_assert_eq(ps_conn_live(), base + 1, "kept while calls are inside");
	ps_life_io_leave(c);
	cr_assert_eq(ps_conn_live(), base + 1, "one call still inside");
	cr_assert_eq(ps_conn_state(c), PS_DEAD);
	ps_life_io_leave(c);
	cr_assert_eq(ps_conn_live(), base, "freed by the last leave");
	cr_assert_eq(word(c), PS_FREE);
	cr_assert_eq(inflight(c), 0);
	close(fd);
}

Test(lifecycle, io_enter_only_on_an_active_record_at_its_number)
{
	int fd, fd2;
	struct ps_conn *c = fresh(&fd);
	struct ps_conn *other = active(&fd2);
	cr_assert_eq(ps_life_io_enter(c, fd), 0, "FRESH");
	cr_assert_eq(inflight(c), 0, "nothing raised");
	cr_assert(ps_life_begin_checkout(c));
	cr_assert_eq(ps_life_io_enter(c, fd), 0, "CHECKOUT");
	cr_assert_eq(inflight(c), 0);
	cr_assert_not(ps_life_end_checkout(c, true));
	uint32_t seq = ps_life_io_enter(c, fd);
	cr_assert_eq(seq, ps_conn_seq(c), "ACTIVE at its number: its incarnation");
	cr_assert_eq(inflight(c), 1);
	ps_life_io_leave(c);
	cr_assert_eq(inflight(c), 0);
	cr_assert_eq(ps_life_io_enter(c, fd2), 0, "another record's number");
	cr_assert_eq(inflight(c), 0);
	cr_assert_eq(inflight(other), 0);
	int p[2];
	cr_assert_eq(pipe(p), 0);
	cr_assert_eq(ps_life_io_enter(c, p[0]), 0, "an untracked number");
	/* the slot holds c, but not as its program number (a hidden copy) */
	struct ps_conn *old;
	cr_assert_eq(ps_fd_swap(p[0], c, &old), 0);
	cr_assert_null(old);
	cr_assert_eq(ps_life_io_enter(c, p[0]), 0, "c's slot at another number");
	cr_assert(ps_fd_cas(p[0], c, NULL));
	cr_assert_eq(inflight(c), 0);
	/* c's own slot cleared (close got there first) */
	cr_assert(ps_fd_cas(fd, c, NULL));
	cr_assert_eq(ps_life_io_enter(c, fd), 0, "slot cleared");
	cr_assert(ps_fd_cas(fd, NULL, c));
	cr_assert(ps_life_begin_reconnect(c));
	cr_assert_eq(ps_life_io_enter(c, fd), 0, "RECONNECTING");
	cr_assert_not(ps_life_end_reconnect(c));
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	cr_assert_eq(ps_life_io_enter(c, fd), 0, "CHECKIN");
	cr_assert_eq(inflight(c), 0);
	close(p[0]);
	close(p[1]);
	close(fd);
	close(fd2);
}

/* A thread that read c from the fd table before c was ended, freed and
 * handed out again: its enter (and the leave that goes with it) must never
 * free the next incarnation, nor act on it. */
Test(lifecycle, late_leave_never_frees_the_next_incarnation)
{
	size_t base = ps_conn_live();
	int fd1;
	struct ps_conn *c = active(&fd1);
	uint32_t seq1 = ps_life_io_enter(c, fd1);
	cr_assert_neq(seq1, 0);
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_ACTIVE);
	ps_life_end(c);
	ps_life_io_leave(c);
	cr_assert_eq(word(c), PS_FREE);
	cr_assert_eq(ps_conn_live(), base);
	/* fd1 stays open (untracked now), so the next socket gets another number */

	/* stale thread T, between its increment and its check (enter's Dekker
	 * half), while the record is free */
	__atomic_fetch_add(&c->inflight, 1, __ATOMIC_SEQ_CST);

	/* the record is handed out again, to another socket, and connected */
	int fd2;
	struct ps_conn *c2 = fresh(&fd2);
	cr_assert_neq(fd2, fd1);
	cr_assert_eq(c2, c, "the slab hands the same record out again");
	uint32_t seq2 = ps_conn_seq(c2);
	cr_assert_neq(seq2, seq1, "a new incarnation");
	cr_assert_eq(inflight(c2), 1, "T's reference survives the reallocation");
	cr_assert(ps_life_begin_connect(c2));
	cr_assert(ps_life_end_connect(c2, true));
	cr_assert_eq(inflight(c2), 1);
	cr_assert_not(ps_life_is(c2, seq1, PS_ACTIVE), "T's incarnation is gone");
	cr_assert(ps_life_is(c2, seq2, PS_ACTIVE));

	/* T's check fails (its number is no longer c's) and it leaves */
	ps_life_io_leave(c);
	cr_assert_eq(ps_conn_state(c2), PS_ACTIVE, "T's leave did not end it");
	cr_assert_eq(ps_conn_live(), base + 1, "T's leave did not free it");
	cr_assert_eq(ps_fd_get(fd2), c2);
	cr_assert_eq(inflight(c2), 0);

	/* a whole stale enter at T's old number: refused, nothing freed */
	cr_assert_eq(ps_life_io_enter(c, fd1), 0);
	cr_assert_eq(ps_conn_live(), base + 1);
	cr_assert_eq(ps_conn_state(c2), PS_ACTIVE);

	/* incarnation 2 ends with its own call inside; a stale enter/leave pair
	 * meanwhile frees nothing; its own call's leave does */
	uint32_t s2 = ps_life_io_enter(c2, fd2);
	cr_assert_eq(s2, seq2);
	cr_assert_eq(ps_life_claim(c2, true), PS_CLAIM_ACTIVE);
	ps_life_end(c2);
	cr_assert_eq(ps_conn_state(c2), PS_DEAD);
	cr_assert_eq(ps_life_io_enter(c, fd1), 0);
	cr_assert_eq(ps_life_io_enter(c, fd2), 0);
	cr_assert_eq(ps_conn_live(), base + 1, "still inside: not freed");
	cr_assert_eq(ps_conn_state(c2), PS_DEAD);
	ps_life_io_leave(c2);
	cr_assert_eq(ps_conn_live(), base);
	cr_assert_eq(word(c2), PS_FREE);
	close(fd1);
	close(fd2);
}

Test(lifecycle, is_checks_incarnation_and_state)
{
	int fd;
	struct ps_conn *c = active(&fd);
	uint32_t seq = ps_conn_seq(c);
	cr_assert(ps_life_is(c, seq, PS_ACTIVE));
	cr_assert_not(ps_life_is(c, seq, PS_FRESH));
	cr_assert_not(ps_life_is(c, seq + 1, PS_ACTIVE));
	cr_assert(ps_life_begin_reconnect(c));
	cr_assert_eq(ps_life_claim(c, true), PS_CLAIM_DEFERRED);
	cr_assert(ps_life_is(c, seq, PS_RECONNECTING), "flags are not the state");
	close(fd);
}
