/* A program that embeds its own http_parser (here: its own http_parser_init
 * and http_parser_execute, exported with -rdynamic, the harshest case: a
 * library's dynamic reference to these names would bind to them).  Run
 * with and without libpoolshim.so preloaded.  Checks:
 *   - the probe (the tracker linked like the shim) parses with its own copy
 *     and never calls the program's functions;
 *   - the program's own calls reach its own functions;
 *   - dlsym from the default scope finds the program's, and no loaded copy
 *     of the shim or the probe exports any http_parser name.
 * argv[1..]: libraries that must be loaded and export none of them. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <http_parser.h>

static int own_init, own_execute;

void http_parser_init(http_parser *p, enum http_parser_type t)
{
	own_init++;
	memset(p, 0, sizeof *p);
	p->type = t;
}

/* Deliberately wrong (claims one byte fewer than given, sets an error):
 * if the tracker were bound to this, its exchange would not frame. */
size_t http_parser_execute(http_parser *p, const http_parser_settings *s, const char *d, size_t n)
{
	(void)s;
	(void)d;
	own_execute++;
	p->http_errno = HPE_UNKNOWN;
	return n ? n - 1 : 0;
}

int probe_http_exchange(void);

static const char *const names[] = {
	"http_parser_init", "http_parser_execute", "http_parser_settings_init", "http_should_keep_alive",
	"http_method_str", "http_status_str", "http_errno_name", "http_errno_description",
	"http_parser_parse_url", "http_parser_url_init", "http_parser_pause", "http_body_is_final",
	"http_parser_version", "http_parser_set_max_header_size", "http_message_needs_eof",
};

int main(int argc, char **argv)
{
	int fails = 0;
	if (probe_http_exchange() != 0) {
		printf("FAIL: the tracker could not frame an HTTP exchange\n");
		fails++;
	}
	if (own_init || own_execute) {
		printf("FAIL: the library called the program's http_parser (%d init, %d execute)\n", own_init,
		       own_execute);
		fails++;
	}
	http_parser p;
	http_parser_init(&p, HTTP_REQUEST);
	http_parser_execute(&p, NULL, "GET", 3);
	if (own_init != 1 || own_execute != 1) {
		printf("FAIL: the program's own calls did not reach its own functions\n");
		fails++;
	}
	if (dlsym(RTLD_DEFAULT, "http_parser_execute") != (void *)http_parser_execute) {
		printf("FAIL: dlsym(RTLD_DEFAULT) does not find the program's http_parser_execute\n");
		fails++;
	}
	for (int i = 1; i < argc; i++) {
		void *h = dlopen(argv[i], RTLD_NOW | RTLD_NOLOAD);
		if (!h) {
			printf("FAIL: %s is not loaded\n", argv[i]);
			fails++;
			continue;
		}
		for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
			if (dlsym(h, names[k])) {
				printf("FAIL: %s exports %s\n", argv[i], names[k]);
				fails++;
			}
		dlclose(h);
	}
	printf("%s: %s\n", argv[0], fails ? "FAILED" : "ok");
	return fails != 0;
}
