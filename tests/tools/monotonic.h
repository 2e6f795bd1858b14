/* Monotonic time in milliseconds and microseconds, for the test clients'
 * deadlines and their elapsed-time figures (echo_client, http_client). */
#ifndef POOLSHIM_TOOLS_MONOTONIC_H
#define POOLSHIM_TOOLS_MONOTONIC_H

#include <stdint.h>
#include <time.h>

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
