/* The checks a descriptor offered to the keeper must pass before it is
 * held: that it is what the message says it is.  A descriptor that is not
 * a socket, not TCP, not connected, not to the key's destination, not the
 * socket whose cookie came with it, or not quiet, is refused, whoever sent
 * it: one bad offer must never reach the next process that asks. */
#ifndef POOLSHIM_KEEPER_VET_H
#define POOLSHIM_KEEPER_VET_H

#include "key.h"

#include <stdint.h>

/* Returns NULL when fd may be held for k, else why not (for the log).
 * netns: the keeper's network namespace cookie (0: the kernel cannot tell,
 * and the socket's directory already tells the namespace apart). */
const char *k_vet(int fd, const struct ps_key *k, uint64_t cookie, uint64_t netns);

#endif
