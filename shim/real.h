/* The one table of libc functions, bound once with dlsym(RTLD_NEXT).  It
 * is lib/'s ps_libc (libc.h): the core makes the program's calls through
 * it, and a wrapper's untracked fast path calls real()->name(...). */
#ifndef POOLSHIM_REAL_H
#define POOLSHIM_REAL_H

#include "libc.h"

extern int ps_real_ready;

const struct ps_libc *ps_real_bind(void);

static inline const struct ps_libc *real(void)
{
	if (__builtin_expect(__atomic_load_n(&ps_real_ready, __ATOMIC_ACQUIRE), 1))
		return &ps_libc;
	return ps_real_bind();
}

/* Sets up the pool once (config, fd table, fork handlers). */
void ps_shim_init(void);

#endif
