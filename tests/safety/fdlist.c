/*
 * fdlist - prints the descriptors this process was started with.
 *
 * One line per open descriptor, "fd <n> <target>" (the /proc/self/fd link,
 * e.g. "socket:[1234]" or "/dev/null"), then "sockets=<k>" where k counts
 * descriptors that are sockets.  The descriptor of the directory listing
 * itself is left out.  Exit status 0.  Used by the safety suite to see what
 * a program exec'd by a shimmed process inherits.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d) {
		perror("fdlist: /proc/self/fd");
		return 1;
	}
	int self = dirfd(d), sockets = 0;
	struct dirent *e;
	for (int i = 0; i < 100000 && (e = readdir(d)); i++) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		char path[64], target[256];
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
		ssize_t n = readlink(path, target, sizeof target - 1);
		target[n > 0 ? n : 0] = '\0';
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			sockets++;
		printf("fd %d %s\n", fd, target);
	}
	closedir(d);
	printf("sockets=%d\n", sockets);
	return 0;
}
