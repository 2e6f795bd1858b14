/* vfork(): the child shares the parent's memory, so a close() it makes would
 * act on the parent's pool, and no memory trick can tell the two apart.  A
 * wrapper cannot call the real vfork either (the child would return through
 * the wrapper's stack frame, which the parent still needs).  fork() is a
 * valid vfork() and goes through the atfork handlers that empty the child's
 * pool (HAZARDS.md 16). */
#include "real.h"

#include <unistd.h>

pid_t vfork(void) { return real()->fork(); }
