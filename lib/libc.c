/* Owns the ps_libc table (libc.h).  Empty until shim/real.c or a test fills it. */
#include "libc.h"

struct ps_libc ps_libc;
