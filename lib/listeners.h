/* This process's own listening sockets.  A connection to one of them is
 * never pooled (DESIGN.md 5, same-process servers): the server thread would
 * wait for an EOF the pool never sends, or for the next connection, which
 * the pool would not make. */
#ifndef POOLSHIM_LISTENERS_H
#define POOLSHIM_LISTENERS_H

#include "key.h"

#include <stdbool.h>

#define PS_MAX_LISTENERS 32

/* listen() succeeded on fd. */
void ps_listening(int fd);

/* Whether k's destination is, or may be, one of this process's listeners
 * (a wildcard listener matches every address on its port).  true when it
 * cannot tell: the safe answer. */
bool ps_listens_on(const struct ps_key *k);

#endif
