/* Monotonic time in nanoseconds.  Pool decisions take `now` as an argument;
 * this is where the shim gets it.  Tests replace the source. */
#ifndef POOLSHIM_CLOCK_H
#define POOLSHIM_CLOCK_H

#include <stdint.h>

#define PS_NS_PER_SEC 1000000000ull

uint64_t ps_now_ns(void);

/* NULL restores CLOCK_MONOTONIC. */
void ps_clock_set_source(uint64_t (*source)(void));

#endif
