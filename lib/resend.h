/* The stale reuse race (DESIGN.md 5): a server may close an idle connection
 * while it is being handed out.  A reused connection whose first write
 * fails, or whose first read ends before any reply byte, is replaced by a
 * new connection to the same destination and what the program sent in this
 * use is sent again, but only when it provably never reached the server:
 * the peer's TCP acknowledged none of it (TCP_INFO), the program has not
 * ended the stream itself (shutdown, close: a cancel is not a stale reuse),
 * and the whole request is still held.  Otherwise the program sees what it
 * would have seen on a fresh connection the server closed. */
#ifndef POOLSHIM_RESEND_H
#define POOLSHIM_RESEND_H

#include "conn.h"

#include <stdbool.h>

enum ps_dir { PS_DIR_WRITE, PS_DIR_READ };

/* c (seq) is ACTIVE at fd and the calling thread is inside an I/O call on
 * it.  Returns true when fd now holds a new connection carrying this use's
 * request: the caller makes its call again, once. */
bool ps_resend(struct ps_conn *c, int fd, enum ps_dir dir);

/* The same for a reused connection with nothing sent on it yet. */
bool ps_replace_unused(struct ps_conn *c, int fd);

#endif
