/* Owns the time source (CLOCK_MONOTONIC through the vDSO: no syscall). */
#include "clock.h"

#include <stdatomic.h>
#include <time.h>

static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * PS_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static _Atomic(uint64_t (*)(void)) source = monotonic_ns;

uint64_t ps_now_ns(void) { return atomic_load_explicit(&source, memory_order_relaxed)(); }

void ps_clock_set_source(uint64_t (*fn)(void))
{
	atomic_store(&source, fn ? fn : monotonic_ns);
}
