/* A tracked connection record: one per TCP socket the program created, from
 * socket() until it is closed for good.  Records are type-stable (never
 * returned to malloc, see mem.h), so a thread holding a stale pointer from
 * the fd table still reads a ps_conn, and re-checks the table afterwards. */
#ifndef POOLSHIM_CONN_H
#define POOLSHIM_CONN_H

#include "key.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* A record's life, one state at a time (docs/state-machine.md has the
 * diagram).  The state word is changed only by lifecycle.c, by CAS, so two
 * threads (or a thread and a signal handler) can never both believe they own
 * a transition.  "Owner" below is who may change the record next. */
enum ps_state {
	PS_FREE = 0,     /* on the slab's free list: nobody's */
	PS_FRESH,        /* socket() made it; not connected.  Owner: the program's calls */
	PS_CONNECTING,   /* the program's own connect() is running on it */
	PS_CHECKOUT,     /* connect() is putting a pooled connection on the program's number */
	PS_ACTIVE,       /* connected, in the program's hands */
	PS_RECONNECTING, /* a stale reuse: the shim is replacing the connection under the number */
	PS_CHECKIN,      /* close() is proving it before it joins the pool */
	PS_IDLE,         /* in the pool, on a hidden descriptor.  Owner: whoever holds the pool lock */
	PS_TAKEN,        /* out of the pool, owned by the one thread that took it */
	PS_DEAD,         /* ended; freed when the last I/O call inside it has left */
	PS_PARKED,       /* closed by the program, kept open on its own number (park.h),
			    which must look closed.  Owner: whoever takes it (CAS to TAKEN) */
	PS_WARM,         /* a parked connection given back by socket(): the program's
			    "fresh" socket until connect() proves it or settles it fresh */
};

#define PS_STATE_MASK 0xff
/* Flags in the state word.  CLOSE_PENDING: the program closed its number
 * while a shim operation owned it (CHECKOUT, RECONNECTING): the owner makes
 * that close when it is done, so nothing is ever dup3'd onto a number the
 * program has given up.  HIDDEN_CLOSED: the program closed the number of the
 * pool's hidden descriptor (a close-everything loop): the connection must not
 * go (back) into the pool. */
#define PS_F_CLOSE_PENDING 0x100
#define PS_F_HIDDEN_CLOSED 0x200

/* Why a connection must not be pooled.  Set from any thread (atomic or). */
enum ps_taint {
	PS_T_SHARED = 1u << 0,       /* dup, fdopen, fork, SCM_RIGHTS: other references */
	PS_T_SHUTDOWN = 1u << 1,
	PS_T_IO_ERROR = 1u << 2,
	PS_T_PEER_CLOSED = 1u << 3,  /* a read returned 0, or the request asked the server to close */
	PS_T_OPTION = 1u << 4,       /* an option the shim cannot carry or reset */
	PS_T_BOUND = 1u << 5,        /* bound to a port, or to something a key cannot hold */
	PS_T_SERVER_FIRST = 1u << 6,
	PS_T_TLS = 1u << 7,
	/* 1u << 8 was PS_T_AUTH: NTLM/Negotiate is the protocol tracker's now (proto.h) */
	PS_T_FILTER = 1u << 9,       /* POOLSHIM_PORTS / EXCLUDE / unsafe destination */
	PS_T_UNTRACKABLE = 1u << 10, /* AF_UNSPEC connect, O_ASYNC, F_SETOWN, ... */
	PS_T_SAME_PROCESS = 1u << 11, /* the destination is a listener of this very process */
};

/* PEEK: a read that leaves the bytes queued (MSG_PEEK) */
enum ps_io { PS_IO_NONE = 0, PS_IO_READ, PS_IO_WRITE, PS_IO_PEEK };

#define PS_MAX_OPTS 12
#define PS_OPT_LEN 16

/* A socket option a user of the connection set, with the value it had
 * before, so the next user can be given the default back. */
struct ps_opt {
	int level, name;
	uint8_t len, default_len;
	uint8_t this_use; /* set by the socket's present user (a parked one's are the last user's) */
	uint8_t value[PS_OPT_LEN];
	uint8_t default_value[PS_OPT_LEN];
};

/* An epoll registration the program made on the fd: dup3 at checkout drops
 * it (it belongs to the replaced socket) and a hidden copy would keep firing
 * it, so the shim removes it at checkin and re-adds it at checkout. */
struct ps_epoll_reg {
	int epfd;
	struct epoll_event ev;
};

#define PS_MAX_EPOLL 4

/* A request sent on a reused connection is kept until the first byte of
 * the reply arrives: if the server had closed the idle connection before the
 * request reached it, the shim resends it on a fresh connection (what HTTP
 * clients do on a stale reuse).  The buffer is taken from its own slab at the
 * first write of a reused connection and given back at the first reply byte,
 * so a record stays small and a hit touches no buffer. */
#define PS_REPLAY_MAX 16384

struct ps_replay {
	void *slab_link;
	uint8_t bytes[PS_REPLAY_MAX];
};

struct ps_bucket;

struct ps_conn {
	/* the slab's free-list link: its own word, so a late write by a thread
	 * that still held a pointer to a freed record cannot break the allocator */
	void *slab_link;
	uint32_t seq;         /* bumped at every allocation: tells incarnations apart */
	int state;            /* enum ps_state | PS_F_*; atomic; lifecycle.c only */
	int inflight;         /* threads inside an I/O call; atomic; never reset (type-stable) */
	int fd;               /* the program's number while FRESH..CHECKIN; -1 while idle */
	int hidden;           /* the pool's close-on-exec copy while CHECKIN..TAKEN, else -1 */
	unsigned taint;       /* enum ps_taint bits; atomic; sticky for the connection's life */
	int last_io;          /* enum ps_io; atomic */
	uint64_t cookie;      /* SO_COOKIE: the socket's identity */
	struct ps_key key;    /* valid from connect on */
	int domain, type, protocol;
	bool nonblock;        /* the program's O_NONBLOCK (per open file) */
	bool cloexec;         /* the program's FD_CLOEXEC (per descriptor) */
	bool cloexec_unknown; /* an exec wrapper set FD_CLOEXEC on the parked number (park.h); atomic */
	bool reused;          /* this use came from the pool */
	bool wrote;           /* a write happened in this use; atomic */
	bool got_data;        /* a read returned bytes in this use */
	bool retried;         /* a stale-reuse replacement was made in this use */
	bool nodelay_pushed;  /* TCP_NODELAY is on for this request's later writes (split writes) */
	bool replay_overflow; /* this use sent more than the replay buffer holds */
	int unused_slot;      /* 1 + its place in ready.c's registry while reused and unused; atomic */
	int generation;       /* fork generation the record was made in */
	uint64_t created_ns, last_used_ns;
	uint64_t checkout_ns;     /* when this use began (a reuse: the late-bytes check) */
	uint64_t idle_limit_ns;   /* 0, or below the server's Keep-Alive: timeout=N */
	uint32_t reuse_count;
	uint64_t sent_before_use; /* bytes sent on this connection before this use */
	uint64_t sent;            /* bytes sent on this connection, all uses */
	int n_opts;
	struct ps_opt opts[PS_MAX_OPTS];
	int n_epoll;
	struct ps_epoll_reg epoll[PS_MAX_EPOLL];
	struct ps_proto_state proto; /* what this use's bytes say (proto.h); from connect on */
	uint32_t replay_len;  /* bytes sent in this use of a reused connection... */
	struct ps_replay *replay; /* ...kept here until the first reply byte */
	socklen_t dest_len;   /* the destination, for the stale-reuse reconnect */
	struct sockaddr_storage dest;

	/* pool linkage, under the pool lock */
	struct ps_bucket *bucket;
	struct ps_conn *next, *prev;         /* bucket's idle list, most recent first */
	struct ps_conn *lru_next, *lru_prev; /* global list, least recent first */
	struct ps_conn *free_next;           /* free list / result lists */
};

/* Which incarnation of a type-stable record this is. */
static inline uint32_t ps_conn_seq(struct ps_conn *c)
{
	return __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
}

static inline unsigned ps_conn_taint(struct ps_conn *c)
{
	return __atomic_load_n(&c->taint, __ATOMIC_ACQUIRE);
}

static inline void ps_conn_add_taint(struct ps_conn *c, unsigned bits)
{
	__atomic_fetch_or(&c->taint, bits, __ATOMIC_ACQ_REL);
}

/* The state without its flags. */
static inline int ps_conn_state(struct ps_conn *c)
{
	return __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) & PS_STATE_MASK;
}

#endif
