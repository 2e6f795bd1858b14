/* Owns the real-symbol table.  Bound under pthread_once; safe to reach
 * before the constructor runs.  Every entry is checked so dlsym can never
 * hand back our own hook (which would recurse forever). */
#include "real.h"
#include "hooks.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/epoll.h>
#include <poll.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/uio.h>
#include <unistd.h>

int ps_real_ready;

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void *lookup_optional(const char *name, void *ours)
{
	void *p = dlsym(RTLD_NEXT, name);
	return p == ours ? NULL : p;
}

static void *lookup(const char *name, void *ours)
{
	void *p = lookup_optional(name, ours);
	if (!p) {
		static const char msg[] = "poolshim: cannot find the libc symbol ";
		/* raw write: our own write() is not bound yet */
		syscall(SYS_write, 2, msg, sizeof msg - 1);
		syscall(SYS_write, 2, name, strlen(name));
		syscall(SYS_write, 2, "\n", 1);
		abort(); /* there is no call to pass through to */
	}
	return p;
}

#define BIND(field, sym) ps_libc.field = lookup(#sym, (void *)&sym)

static void bind_all(void)
{
	BIND(socket, socket);
	BIND(connect, connect);
	BIND(close, close);
	BIND(shutdown, shutdown);
	BIND(bind, bind);
	BIND(listen, listen);
	BIND(setsockopt, setsockopt);
	BIND(getsockopt, getsockopt);
	BIND(accept, accept);
	BIND(accept4, accept4);
	BIND(fcntl, fcntl);
	BIND(fcntl64, fcntl64);
	BIND(ioctl, ioctl);
	BIND(dup, dup);
	BIND(dup2, dup2);
	BIND(dup3, dup3);
	BIND(write, write);
	BIND(writev, writev);
	BIND(send, send);
	BIND(sendto, sendto);
	BIND(sendmsg, sendmsg);
	BIND(sendmmsg, sendmmsg);
	BIND(read, read);
	BIND(readv, readv);
	BIND(recv, recv);
	BIND(recvfrom, recvfrom);
	BIND(recvmsg, recvmsg);
	BIND(recvmmsg, recvmmsg);
	BIND(read_chk, __read_chk);
	BIND(recv_chk, __recv_chk);
	BIND(recvfrom_chk, __recvfrom_chk);
	BIND(sendfile, sendfile);
	BIND(sendfile64, sendfile64);
	BIND(splice, splice);
	BIND(pwritev2, pwritev2);
	BIND(pwritev64v2, pwritev64v2);
	BIND(preadv2, preadv2);
	BIND(preadv64v2, preadv64v2);
	BIND(fdopen, fdopen);
	ps_libc.close_range = lookup_optional("close_range", (void *)&close_range);
	ps_libc.closefrom = lookup_optional("closefrom", (void *)&closefrom);
	BIND(epoll_ctl, epoll_ctl);
	BIND(epoll_wait, epoll_wait);
	BIND(epoll_pwait, epoll_pwait);
	BIND(poll, poll);
	BIND(ppoll, ppoll);
	BIND(select, select);
	BIND(pselect, pselect);
	BIND(open, open);
	BIND(open64, open64);
	BIND(openat, openat);
	BIND(openat64, openat64);
	ps_libc.fork = lookup("fork", NULL);
	BIND(getsockname, getsockname);
	BIND(getpeername, getpeername);
	BIND(fstat, fstat);
	BIND(fstat64, fstat64);
	BIND(execve, execve);
	BIND(execv, execv);
	BIND(execvp, execvp);
	BIND(execvpe, execvpe);
	BIND(fexecve, fexecve);
	BIND(posix_spawn, posix_spawn);
	BIND(posix_spawnp, posix_spawnp);
	BIND(system, system);
	BIND(popen, popen);
	__atomic_store_n(&ps_real_ready, 1, __ATOMIC_RELEASE);
}

const struct ps_libc *ps_real_bind(void)
{
	pthread_once(&once, bind_all);
	return &ps_libc;
}
