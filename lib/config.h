/* Every POOLSHIM_* variable, its default and its range, parsed once into a
 * struct the rest of the code reads.  No getenv() anywhere else.
 *
 * Fail closed: a value that cannot be parsed turns off what it governs,
 * with one warning line.  A well-formed number outside its range is clamped
 * (one warning).  In detail:
 *   POOLSHIM_DISABLE            0 or 1; anything else disables pooling
 *   POOLSHIM_MAX_IDLE_PER_HOST, POOLSHIM_MAX_IDLE, POOLSHIM_IDLE_TIMEOUT,
 *   POOLSHIM_MAX_LIFETIME, POOLSHIM_MAX_REUSE
 *                               not a number: pooling is disabled (these caps
 *                               bound what is kept; a default in place of a
 *                               cap the user wrote could keep more, or longer)
 *   POOLSHIM_PORTS              not a list of ports: no port is pooled
 *   POOLSHIM_EXCLUDE            an entry that cannot be honoured: pooling disabled
 *   POOLSHIM_PROTOCOLS          an unknown word or an empty item: no protocol is pooled
 *   POOLSHIM_UNIX               0 or 1; anything else: AF_UNIX is not pooled
 *   POOLSHIM_STATS              0, 1, or a path with a '/' in it ("./stats" for
 *                               the current directory); anything else: no statistics
 *   POOLSHIM_LOG                not a level: warn (a bad level must not hide the
 *                               warning that says so)
 *   POOLSHIM_LOG_FILE           any non-empty path
 *   POOLSHIM_SHARED             0 or 1; anything else: not shared (docs/shared.md)
 *   POOLSHIM_SHARED_LINGER      seconds; not a number: not shared
 *   POOLSHIM_KEEPER             the keeper program to start (the launcher sets it)
 *   XDG_RUNTIME_DIR             where the keeper's directory goes, if it is ours */
#ifndef POOLSHIM_CONFIG_H
#define POOLSHIM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <limits.h>
#include <netinet/in.h>

#include "proto.h"

#define PS_ENV_DISABLE "POOLSHIM_DISABLE"
#define PS_ENV_MAX_IDLE_PER_HOST "POOLSHIM_MAX_IDLE_PER_HOST"
#define PS_ENV_MAX_IDLE "POOLSHIM_MAX_IDLE"
#define PS_ENV_IDLE_TIMEOUT "POOLSHIM_IDLE_TIMEOUT"
#define PS_ENV_MAX_LIFETIME "POOLSHIM_MAX_LIFETIME"
#define PS_ENV_MAX_REUSE "POOLSHIM_MAX_REUSE"
#define PS_ENV_PORTS "POOLSHIM_PORTS"
#define PS_ENV_EXCLUDE "POOLSHIM_EXCLUDE"
#define PS_ENV_UNIX "POOLSHIM_UNIX"
#define PS_ENV_PARK "POOLSHIM_PARK"
#define PS_ENV_LOG "POOLSHIM_LOG"
#define PS_ENV_LOG_FILE "POOLSHIM_LOG_FILE"
#define PS_ENV_STATS "POOLSHIM_STATS"
#define PS_ENV_PROTOCOLS "POOLSHIM_PROTOCOLS"
#define PS_ENV_SHARED "POOLSHIM_SHARED"
#define PS_ENV_SHARED_LINGER "POOLSHIM_SHARED_LINGER"
#define PS_ENV_KEEPER "POOLSHIM_KEEPER"
#define PS_ENV_RUNTIME_DIR "XDG_RUNTIME_DIR"

#define PS_DEFAULT_MAX_IDLE_PER_HOST 4
#define PS_DEFAULT_MAX_IDLE 128
#define PS_DEFAULT_IDLE_TIMEOUT_MS 15000
#define PS_MAX_EXCLUDES 32
#define PS_DEFAULT_SHARED_LINGER_MS 60000
/* meson passes the installed keeper's path; a build without it starts none
 * unless POOLSHIM_KEEPER names one */
#ifndef PS_KEEPER_PATH
#define PS_KEEPER_PATH ""
#endif

/* One POOLSHIM_EXCLUDE entry: an address prefix and/or a port. */
struct ps_exclude {
	int family;        /* AF_INET, AF_INET6, or 0 for ":port" (any address) */
	uint8_t addr[16];
	int prefix;        /* bits that must match */
	uint16_t port;     /* host order; 0 = any port */
};

enum ps_stats_mode { PS_STATS_OFF, PS_STATS_STDERR, PS_STATS_FILE };

struct ps_config {
	bool disable;
	unsigned max_idle_per_host;
	unsigned max_idle;
	uint64_t idle_timeout_ns;
	uint64_t max_lifetime_ns; /* 0: no limit */
	unsigned max_reuse;       /* 0: no limit */
	bool ports_all;
	uint8_t ports[65536 / 8]; /* bitmap, used when !ports_all */
	int n_excludes;
	struct ps_exclude excludes[PS_MAX_EXCLUDES];
	bool unix_sockets;
	bool park;                /* keep a closed connection on its own number (park.h) */
	int log_level;
	char log_file[PATH_MAX];
	enum ps_stats_mode stats;
	char stats_path[PATH_MAX];
	unsigned protocols;       /* PS_PROTO_BIT mask; 0: nothing is pooled */
	bool shared;              /* hand idle connections to the keeper, ask it on a miss */
	uint64_t shared_linger_ns; /* the keeper exits after this long with no request */
	char keeper_path[PATH_MAX];
	char runtime_dir[PATH_MAX]; /* XDG_RUNTIME_DIR, "" if unset */
};

extern struct ps_config ps_config;

typedef const char *(*ps_env_lookup)(const char *name);

/* Fills *c from the lookup (getenv in the shim).  A bad value logs one warning
 * line and turns off what it governs (above); an out-of-range number is
 * clamped with one warning.  Returns the number of warnings. */
int ps_config_parse(struct ps_config *c, ps_env_lookup lookup);

/* Whether a destination may be pooled (port filter and exclusions; nothing
 * when no protocol is enabled).  addr is 4 or 16 bytes per family; port in
 * host order. */
bool ps_config_allows(const struct ps_config *c, int family, const uint8_t *addr, uint16_t port);

#endif
