/* A program linked against the system's shared libhttp_parser.so, run with
 * libpoolshim.so preloaded (a preloaded library comes first in symbol
 * lookup: if the shim exported http_parser_execute, the program would bind
 * to the shim's copy).  Checks that the program's calls resolve to
 * libhttp_parser.so, before and after the probe (the tracker, linked like
 * the shim) is loaded and used, and that both still parse.
 * argv[1]: the probe library; argv[2..]: libraries that must be loaded and
 * export no http_parser name. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <http_parser.h>

static int resolved_to_system(const char *when)
{
	Dl_info info;
	void *sym = dlsym(RTLD_DEFAULT, "http_parser_execute");
	if (!sym || !dladdr(sym, &info) || !info.dli_fname || !strstr(info.dli_fname, "libhttp_parser.so")) {
		printf("FAIL (%s): http_parser_execute resolves to %s\n", when,
		       sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "nothing");
		return 0;
	}
	/* the program's direct (PLT) call lands in the same place */
	if ((void *)http_parser_execute != sym) {
		printf("FAIL (%s): the program's http_parser_execute is not the system one\n", when);
		return 0;
	}
	return 1;
}

static int parses(void)
{
	static const http_parser_settings settings;
	static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	http_parser p;
	http_parser_init(&p, HTTP_REQUEST);
	return http_parser_execute(&p, &settings, req, sizeof req - 1) == sizeof req - 1 &&
	       HTTP_PARSER_ERRNO(&p) == HPE_OK;
}

int main(int argc, char **argv)
{
	int fails = 0;
	if (argc < 2)
		return 2;
	fails += !resolved_to_system("at start");
	fails += !parses();
	void *probe = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	int (*exchange)(void) = probe ? (int (*)(void))dlsym(probe, "probe_http_exchange") : NULL;
	if (!exchange || exchange() != 0) {
		printf("FAIL: the probe could not frame an HTTP exchange (%s)\n", probe ? "" : dlerror());
		fails++;
	}
	fails += !resolved_to_system("after loading the probe");
	fails += !parses();
	for (int i = 2; i < argc; i++) {
		void *h = dlopen(argv[i], RTLD_NOW | RTLD_NOLOAD);
		if (!h) {
			printf("FAIL: %s is not loaded\n", argv[i]);
			fails++;
		} else {
			if (dlsym(h, "http_parser_execute") || dlsym(h, "http_parser_init")) {
				printf("FAIL: %s exports http_parser\n", argv[i]);
				fails++;
			}
			dlclose(h);
		}
	}
	printf("%s: %s\n", argv[0], fails ? "FAILED" : "ok");
	return fails != 0;
}
