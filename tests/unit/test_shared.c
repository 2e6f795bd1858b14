/* The shim's side of sharing (lib/shared.c, shared_pool.c, shared_spawn.c,
 * rundir.c): the private directory's checks, starting the keeper, and whole
 * exchanges with a real keeper (keeper/serve.c) run in a child process on a
 * socket in a temporary XDG_RUNTIME_DIR.  The connection path is driven
 * through the shim's entry points (steps.h) as in test_handoff.c. */
#include "clock.h"
#include "config.h"
#include "helpers.h"
#include "keeper.h"
#include "kmsg.h"
#include "probe.h"
#include "rundir.h"
#include "shared.h"
#include "state.h"
#include "stats.h"
#include "steps.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#define SEC 1000000000ull

static char xdg[64];
static struct ps_rundir rd;
static int lfd;
static struct sockaddr_in dst;
static pid_t keeper_pid;

static void setup(void)
{
	lfd = t_pool_setup(&dst);
	snprintf(xdg, sizeof xdg, "/tmp/ps-unit-shared.XXXXXX");
	cr_assert_not_null(mkdtemp(xdg));
	ps_config.shared = true;
	ps_config.keeper_path[0] = '\0'; /* no keeper is started unless a test says */
	snprintf(ps_config.runtime_dir, sizeof ps_config.runtime_dir, "%s", xdg);
	cr_assert_eq(ps_rundir_init(&rd, xdg, getuid()), 0);
	keeper_pid = 0;
}

static void teardown(void)
{
	char cmd[128];
	ps_sys_reset();
	if (keeper_pid > 0) {
		kill(keeper_pid, SIGKILL);
		waitpid(keeper_pid, NULL, 0);
	}
	snprintf(cmd, sizeof cmd, "rm -rf %s", xdg);
	(void)!system(cmd);
}

TestSuite(shared, .init = setup, .fini = teardown);

/* A keeper in a child process, serving rd's socket as poolshim-keeper does. */
static void start_keeper(void)
{
	struct sockaddr_un sa;
	cr_assert_eq(ps_rundir_check(&rd, true, NULL, 0), 0);
	mode_t old = umask(077);
	int ls = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&sa, ps_rundir_addr(&rd, &sa)), 0);
	cr_assert_eq(listen(ls, 16), 0);
	umask(old);
	keeper_pid = fork();
	cr_assert_geq(keeper_pid, 0);
	if (keeper_pid == 0) {
		static struct k_keeper kp;
		struct k_caps caps = { .max_per_key = 4, .max_total = 16, .idle_timeout_ns = 15 * SEC };
		ps_clock_set_source(NULL);
		kp.uid = getuid();
		kp.rd = rd;
		kp.linger_ns = 30 * SEC;
		kp.started_ns = kp.last_request_ns = ps_now_ns();
		k_store_init(&kp.store, &caps);
		k_serve(&kp, ls);
		_exit(0);
	}
	close(ls);
}

/* ---- the directory ---- */

Test(shared, runtime_dir_of_ours_or_tmp)
{
	cr_assert_eq(strncmp(rd.dir, xdg, strlen(xdg)), 0);
	cr_assert_str_eq(rd.dir + strlen(xdg), "/poolshim");
	char sock[128];
	snprintf(sock, sizeof sock, "%s/keeper-ns%llu.sock", rd.dir, (unsigned long long)ps_rundir_netns());
	cr_assert_str_eq(rd.sock, sock, "one keeper per network namespace");
	struct ps_rundir other;
	/* an XDG_RUNTIME_DIR of another user (inherited through su) is not used */
	cr_assert_eq(ps_rundir_init(&other, xdg, getuid() + 1), 0);
	char want[64];
	snprintf(want, sizeof want, "/tmp/poolshim-%lu", (unsigned long)getuid() + 1);
	cr_assert_str_eq(other.dir, want);
	cr_assert_eq(ps_rundir_init(&other, "", getuid()), 0);
	cr_assert_eq(strncmp(other.dir, "/tmp/poolshim-", 14), 0);
}

Test(shared, wrong_mode_owner_or_kind_is_refused_with_a_reason)
{
	char why[160];
	cr_assert_eq(ps_rundir_check(&rd, false, why, sizeof why), -1);
	cr_assert_eq(errno, ENOENT, "missing, and not created");
	cr_assert_eq(ps_rundir_check(&rd, true, why, sizeof why), 0);
	chmod(rd.dir, 0755);
	cr_assert_eq(ps_rundir_check(&rd, true, why, sizeof why), -1);
	cr_assert(strstr(why, "has mode 755, not 700"), "%s", why);
	chmod(rd.dir, 0700);
	struct ps_rundir them = rd;
	them.uid = getuid() + 1;
	cr_assert_eq(ps_rundir_check(&them, false, why, sizeof why), -1);
	cr_assert(strstr(why, "belongs to uid"), "%s", why);
	/* a symlink to a good directory is not the directory */
	struct ps_rundir link = rd;
	snprintf(link.dir, sizeof link.dir, "%s/link", xdg);
	cr_assert_eq(symlink(rd.dir, link.dir), 0);
	cr_assert_eq(ps_rundir_check(&link, false, why, sizeof why), -1);
	cr_assert(strstr(why, "is not a directory"), "%s", why);
	/* the socket: no file; not a socket; group bits */
	cr_assert_eq(ps_rundir_check_socket(&rd, why, sizeof why), -1);
	cr_assert_eq(errno, ENOENT);
	close(open(rd.sock, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(ps_rundir_check_socket(&rd, why, sizeof why), -1);
	cr_assert(strstr(why, "is not a socket"), "%s", why);
	unlink(rd.sock);
	struct sockaddr_un sa;
	int s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cr_assert_eq(bind(s, (struct sockaddr *)&sa, ps_rundir_addr(&rd, &sa)), 0);
	chmod(rd.sock, 0770);
	cr_assert_eq(ps_rundir_check_socket(&rd, why, sizeof why), -1);
	cr_assert(strstr(why, "has mode 770"), "%s", why);
	chmod(rd.sock, 0700);
	cr_assert_eq(ps_rundir_check_socket(&rd, why, sizeof why), 0);
	close(s);
}

Test(shared, a_bad_directory_warns_once_and_the_program_connects)
{
	t_log_capture_start();
	cr_assert_eq(ps_rundir_check(&rd, true, NULL, 0), 0);
	chmod(rd.dir, 0711);
	struct ps_shared_meta m;
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	cr_assert_eq(ps_shared_take(&k, &m), -1);
	cr_assert_eq(ps_shared_take(&k, &m), -1);
	cr_assert_eq(t_log_count_lines("not sharing connections"), 1, "%s", t_log_captured());
	cr_assert_eq(t_log_count_lines("has mode 711"), 1);
}

/* ---- starting the keeper ---- */

static char spawned_env[4096];
static int spawns;

static int fake_spawn(pid_t *pid, const char *path, char *const argv[], char *const envp[])
{
	(void)path;
	spawns++;
	cr_assert_str_eq(argv[1], "--detach");
	spawned_env[0] = '\0';
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
			snprintf(spawned_env, sizeof spawned_env, "%s", *e);
	*pid = 0;
	return 0;
}

static pid_t fake_wait4(pid_t pid, int *status, int options)
{
	(void)pid, (void)status, (void)options;
	return 1;
}

Test(shared, the_keeper_starts_once_without_the_shim_preloaded)
{
	setenv("LD_PRELOAD", "/opt/libasan.so /x/y/libpoolshim.so:/z/libother.so", 1);
	ps_sys.spawn = fake_spawn;
	ps_sys.wait4 = fake_wait4;
	snprintf(ps_config.keeper_path, sizeof ps_config.keeper_path, "/nonexistent/poolshim-keeper");
	struct ps_shared_meta m;
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	uint64_t t0 = ps_now_ns();
	cr_assert_eq(ps_shared_take(&k, &m), -1, "no keeper yet: the program connects itself");
	cr_assert_lt(ps_now_ns() - t0, PS_SHARED_BOUND_NS);
	cr_assert_eq(spawns, 1);
	cr_assert_str_eq(spawned_env, "LD_PRELOAD=/opt/libasan.so /z/libother.so");
	cr_assert_eq(ps_shared_take(&k, &m), -1);
	cr_assert_eq(spawns, 1, "once per process");
	unsetenv("LD_PRELOAD");
}

Test(shared, no_start_while_a_keeper_holds_the_lock)
{
	ps_sys.spawn = fake_spawn;
	snprintf(ps_config.keeper_path, sizeof ps_config.keeper_path, "/nonexistent/poolshim-keeper");
	cr_assert_eq(ps_rundir_check(&rd, true, NULL, 0), 0);
	int lock = open(rd.lock, O_RDWR | O_CREAT, 0600);
	cr_assert_eq(flock(lock, LOCK_EX), 0);
	ps_shared_spawn();
	cr_assert_eq(spawns, 0);
	close(lock);
}

/* ---- exchanges with a real keeper ---- */

static int tcp_conn(int *srv)
{
	int c = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&dst, sizeof dst), 0);
	*srv = t_accept(lfd, 2000);
	return c;
}

Test(shared, offer_then_take_through_the_keeper)
{
	start_keeper();
	int s;
	int c = tcp_conn(&s);
	uint64_t ck;
	ps_probe_cookie(c, &ck);
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	struct ps_shared_batch b;
	cr_assert_eq(ps_shared_batch_open(&b), 0);
	struct ps_shared_meta m = { .cookie = ck, .created_ns = ps_now_ns(), .last_used_ns = ps_now_ns(),
				    .reuse_count = 3, .sent = 99 };
	cr_assert_eq(ps_shared_batch_offer(&b, &k, &m, c), 0);
	ps_shared_batch_close(&b);
	close(c);

	struct ps_shared_meta got;
	int fd = -1;
	for (int i = 0; i < 100 && fd < 0; i++) /* the keeper reads the offer first */
		fd = ps_shared_take(&k, &got);
	cr_assert_geq(fd, 0);
	cr_assert_geq(fd, ps_g.hidden_floor, "placed with the hidden descriptors");
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	cr_assert_eq(got.cookie, ck);
	cr_assert_eq(got.reuse_count, 3);
	cr_assert_eq(got.sent, 99);
	cr_assert(ps_probe_same(fd, got.cookie));
	cr_assert_eq(ps_shared_take(&k, &got), -1, "one socket, one taker");
	close(fd);
	close(s);
}

Test(shared, a_silent_keeper_costs_at_most_the_bound)
{
	/* a socket that accepts connections and never answers */
	struct sockaddr_un sa;
	cr_assert_eq(ps_rundir_check(&rd, true, NULL, 0), 0);
	mode_t old = umask(077);
	int ls = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&sa, ps_rundir_addr(&rd, &sa)), 0);
	cr_assert_eq(listen(ls, 16), 0);
	umask(old);
	ps_clock_set_source(NULL);
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	struct ps_shared_meta m;
	/* the fastest of three: a loaded machine (the sanitized suites run
	 * side by side) can wake any one of them late, where a wait that is
	 * not bounded is late every time */
	uint64_t took = UINT64_MAX;
	for (int i = 0; i < 3; i++) {
		uint64_t t0 = ps_now_ns();
		cr_assert_eq(ps_shared_take(&k, &m), -1);
		uint64_t t = ps_now_ns() - t0;
		cr_assert_geq(t, PS_SHARED_BOUND_NS - 1000000);
		if (t < took)
			took = t;
	}
	cr_assert_lt(took, PS_SHARED_BOUND_NS + 3000000, "took %llu ns", (unsigned long long)took);
	close(ls);
}

Test(shared, a_stale_socket_means_a_start_and_a_real_connect)
{
	struct sockaddr_un sa;
	cr_assert_eq(ps_rundir_check(&rd, true, NULL, 0), 0);
	mode_t old = umask(077);
	int ls = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	cr_assert_eq(bind(ls, (struct sockaddr *)&sa, ps_rundir_addr(&rd, &sa)), 0);
	umask(old);
	close(ls); /* the file stays, nobody listens: a dead keeper's */
	ps_sys.spawn = fake_spawn;
	ps_sys.wait4 = fake_wait4;
	snprintf(ps_config.keeper_path, sizeof ps_config.keeper_path, "/nonexistent/poolshim-keeper");
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	struct ps_shared_meta m;
	cr_assert_eq(ps_shared_take(&k, &m), -1);
	cr_assert_eq(spawns, 1, "ECONNREFUSED starts a keeper");
}

/* SO_PEERCRED of the keeper says another uid */
static int keeper_other_uid(int fd, int level, int name, void *val, socklen_t *len)
{
	int r = (int)syscall(SYS_getsockopt, fd, level, name, val, len);
	if (r == 0 && level == SOL_SOCKET && name == SO_PEERCRED)
		((struct ucred *)val)->uid = getuid() + 1;
	return r;
}

Test(shared, a_keeper_of_another_uid_is_never_used)
{
	start_keeper();
	t_log_capture_start();
	ps_sys.getsockopt = keeper_other_uid;
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	struct ps_shared_meta m;
	cr_assert_eq(ps_shared_take(&k, &m), -1);
	struct ps_shared_batch b;
	cr_assert_eq(ps_shared_batch_open(&b), -1, "nothing is offered to it either");
	cr_assert_eq(t_log_count_lines("served by another user"), 1, "%s", t_log_captured());
}

/* ---- the whole path: one process's pool, the keeper, the next connect ---- */

Test(shared, a_connection_outlives_its_process_pool_and_is_reused)
{
	start_keeper();
	ps_clock_set_source(NULL);
	int fd = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
	cr_assert(!last_hit);
	int s = t_accept(lfd, 2000);
	char b[8];
	cr_assert_eq(w_write(fd, "REQ 1\n", 6), 6);
	cr_assert_eq(t_read_n(s, b, 6, 1000), 6);
	cr_assert_eq(write(s, "RSP 1\n", 6), 6);
	cr_assert_eq(w_read(fd, b, 6), 6);
	cr_assert_eq(w_close(fd), 0);
	cr_assert(last_pooled);
	/* the process exits: its pool goes to the keeper */
	ps_shared_exit();
	cr_assert_eq(ps_stat_get(PS_ST_SHARED_OFFERED), 1);
	cr_assert_eq(ps_g.pool.total, 0);
	usleep(100000); /* the keeper reads the offer */
	/* another process (here: the same one, its pool empty) connects */
	int fd2 = w_socket(SOCK_STREAM);
	cr_assert_eq(w_connect(fd2, (struct sockaddr *)&dst, sizeof dst), 0);
	cr_assert(last_hit, "served by the keeper's connection");
	cr_assert_eq(ps_stat_get(PS_ST_SHARED_TAKEN), 1);
	cr_assert_eq(w_write(fd2, "REQ 2\n", 6), 6);
	cr_assert_eq(t_read_n(s, b, 6, 1000), 6, "on the same server socket: no new connection");
	cr_assert_eq(memcmp(b, "REQ 2\n", 6), 0);
	w_close(fd2);
	close(s);
}

Test(shared, an_unsafe_destination_travels)
{
	start_keeper();
	struct ps_key k;
	ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&dst, sizeof dst);
	ps_unsafe_add(&k);
	ps_shared_exit(); /* the unsafe set goes with the exit */
	/* a new process knows nothing yet... */
	ps_lock();
	ps_g.unsafe = NULL;
	ps_g.n_unsafe = 0;
	ps_unlock();
	struct ps_shared_meta m;
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(ps_shared_take(&k, &m), -1);
		if (m.flags & PS_KM_UNSAFE_DEST)
			break;
	}
	cr_assert(m.flags & PS_KM_UNSAFE_DEST, "...and learns it at its first ask");
}
