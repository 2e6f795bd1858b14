/* The calls that run another program.  A parked number (lib/park.h) is a
 * descriptor the program believes closed: it must not reach the new
 * program, and setting FD_CLOEXEC at every park would cost each cycle a
 * syscall.  So it is set here, once per exec, on every parked number.
 * glibc's execl family, system and popen reach execve and posix_spawn
 * through internal calls no preload sees, so each is wrapped itself.
 * vfork is fork here (process.c), and its child's exec comes through these. */
#include "real.h"
#include "park.h"

#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int execve(const char *path, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->execve(path, argv, envp);
}

int execv(const char *path, char *const argv[])
{
	ps_park_before_exec();
	return real()->execv(path, argv);
}

int execvp(const char *file, char *const argv[])
{
	ps_park_before_exec();
	return real()->execvp(file, argv);
}

int execvpe(const char *file, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->execvpe(file, argv, envp);
}

int fexecve(int fd, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->fexecve(fd, argv, envp);
}

/* More arguments than fit in any exec's argument space (ARG_MAX is far
 * below this many pointers). */
#define MAX_EXECL_ARGS 65536

enum execl_kind { EXECL, EXECLP, EXECLE };

/* The execl family as its execv counterpart: the arguments after arg0 up
 * to the NULL, and for execle the environment after it. */
static int execl_as_execv(enum execl_kind kind, const char *path, const char *arg0, va_list ap)
{
	va_list count;
	va_copy(count, ap);
	size_t n = 1;
	while (va_arg(count, char *) && n < MAX_EXECL_ARGS)
		n++;
	va_end(count);
	if (n >= MAX_EXECL_ARGS) {
		errno = E2BIG;
		return -1;
	}
	char *argv[n + 1];
	argv[0] = (char *)arg0;
	for (size_t i = 1; i <= n; i++)
		argv[i] = va_arg(ap, char *); /* argv[n] is the NULL */
	switch (kind) {
	case EXECLP:
		return execvp(path, argv);
	case EXECLE:
		return execve(path, argv, va_arg(ap, char *const *));
	default:
		return execv(path, argv);
	}
}

int execl(const char *path, const char *arg0, ...)
{
	va_list ap;
	va_start(ap, arg0);
	int r = execl_as_execv(EXECL, path, arg0, ap);
	va_end(ap);
	return r;
}

int execlp(const char *file, const char *arg0, ...)
{
	va_list ap;
	va_start(ap, arg0);
	int r = execl_as_execv(EXECLP, file, arg0, ap);
	va_end(ap);
	return r;
}

int execle(const char *path, const char *arg0, ...)
{
	va_list ap;
	va_start(ap, arg0);
	int r = execl_as_execv(EXECLE, path, arg0, ap);
	va_end(ap);
	return r;
}

int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->posix_spawn(pid, path, actions, attr, argv, envp);
}

int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
		 const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	ps_park_before_exec();
	return real()->posix_spawnp(pid, file, actions, attr, argv, envp);
}

int system(const char *command)
{
	ps_park_before_exec();
	return real()->system(command);
}

FILE *popen(const char *command, const char *mode)
{
	ps_park_before_exec();
	return real()->popen(command, mode);
}
