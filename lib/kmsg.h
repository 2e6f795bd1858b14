/* The keeper protocol (docs/shared.md): what the shim and poolshim-keeper
 * say to each other over a SOCK_SEQPACKET Unix socket.  One message is one
 * packet, so a message arrives whole or not at all, and a client that goes
 * away mid-request leaves nothing half-read behind.
 *
 * Every message is a header and a fixed-size body for its type (UNSAFE and
 * the status lines: a counted array).  Both ends run on the same machine,
 * built from the same tree: integers are native, and the header carries
 * the size of struct ps_key and of the metadata, so a keeper and a shim of
 * different builds refuse each other instead of misreading a key.
 *
 *   client -> keeper                    keeper -> client
 *   TAKE    key                         GIVE  meta + one descriptor,
 *                                       or NONE flags (PS_KM_UNSAFE_DEST)
 *   OFFER   key, meta + one descriptor  (no answer)
 *   UNSAFE  n destination keys          (no answer)
 *   STATUS                              STATUS_HEAD, STATUS_DEST..., STATUS_END
 *
 * This file only encodes and checks bytes, and moves one packet (with at
 * most a few descriptors) through ps_sys: no policy. */
#ifndef POOLSHIM_KMSG_H
#define POOLSHIM_KMSG_H

#include "conn.h"
#include "key.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PS_KMSG_MAGIC 0x4b4d5350u /* "PSMK" */
#define PS_KMSG_VERSION 1

enum ps_kmsg_type {
	PS_KM_TAKE = 1,
	PS_KM_OFFER = 2,
	PS_KM_UNSAFE = 3,
	PS_KM_STATUS = 4,
	PS_KM_GIVE = 16,
	PS_KM_NONE = 17,
	PS_KM_STATUS_HEAD = 18,
	PS_KM_STATUS_DEST = 19,
	PS_KM_STATUS_END = 20,
};

struct ps_kmsg_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint16_t key_size;  /* sizeof(struct ps_key) */
	uint16_t meta_size; /* sizeof(struct ps_shared_meta) */
	uint32_t len;       /* body bytes after the header */
};

/* What travels with a connection: enough for the receiver to run the same
 * proofs and caps as on an idle connection of its own (handoff.c). */
struct ps_shared_meta {
	uint64_t cookie;       /* SO_COOKIE, checked again by the receiver */
	uint64_t created_ns;   /* CLOCK_MONOTONIC, the same clock in every process */
	uint64_t last_used_ns; /* when its last user closed it */
	uint64_t sent;         /* bytes sent on it, all uses */
	uint32_t reuse_count;
	uint32_t flags;        /* PS_KM_* flags below (NONE answers) */
	uint32_t n_opts;       /* options a previous user set: reset by the next one */
	uint32_t pad;
	struct ps_opt opts[PS_MAX_OPTS];
};

/* The metadata of an idle record, as it travels (zero-filled first). */
void ps_shared_meta_of(const struct ps_conn *c, struct ps_shared_meta *m);

/* NONE: the keeper knows the destination is unsafe (server speaks first,
 * TLS, abandoned answers): the asker should not pool it either. */
#define PS_KM_UNSAFE_DEST 1u

#define PS_KMSG_MAX_UNSAFE 16

struct ps_km_take {
	struct ps_key key;
};
struct ps_km_offer {
	struct ps_key key;
	struct ps_shared_meta meta;
};
struct ps_km_give {
	struct ps_shared_meta meta;
};
struct ps_km_none {
	uint32_t flags;
	uint32_t pad;
};
struct ps_km_unsafe {
	uint32_t n;
	uint32_t pad;
	struct ps_key keys[PS_KMSG_MAX_UNSAFE];
};

/* The keeper's counters, in its status answer. */
enum ps_km_counter {
	PS_KC_OFFERS,         /* connections offered */
	PS_KC_HELD,           /* ...and kept */
	PS_KC_REFUSED,        /* ...and refused (not a connected TCP socket, wrong key, dead, full...) */
	PS_KC_TAKES,          /* asked for */
	PS_KC_HITS,           /* ...and handed out */
	PS_KC_REAPED,         /* expired while held */
	PS_KC_EVICTED,        /* pushed out by the caps */
	PS_KC_STALE,          /* found dead when asked for */
	PS_KC_BAD_MESSAGES,   /* garbage, wrong size, wrong version */
	PS_KC_BAD_PEERS,      /* another uid */
	PS_KC_UNREAD,         /* handed out, but the asker had given up: held again */
	PS_KC_COUNT
};

struct ps_km_status_head {
	int32_t pid;
	uint32_t uid;
	uint64_t uptime_ns;
	uint64_t quiet_ns;        /* since the last request */
	uint64_t linger_ns;
	uint64_t idle_timeout_ns;
	uint64_t max_lifetime_ns;
	uint32_t max_reuse;
	uint32_t max_per_key;
	uint32_t max_total;
	uint32_t held;
	uint32_t n_dest;
	uint32_t n_unsafe;
	uint64_t counters[PS_KC_COUNT];
};

struct ps_km_status_dest {
	struct ps_key key;
	uint32_t idle;
	uint32_t unsafe;          /* 1: an unsafe destination, idle is 0 */
	uint64_t hits, offers;
	uint64_t newest_idle_ns;  /* how long the most recently offered one has been idle */
	uint64_t oldest_idle_ns;
	uint64_t oldest_age_ns;   /* since the oldest held one was connected */
};

/* The largest packet (kmsg.c checks every body fits): the size of the
 * encode and receive buffers. */
#define PS_KMSG_MAX 4096

/* A decoded message: points into the buffer it was decoded from. */
struct ps_kmsg {
	int type;
	const void *body;
	size_t len;
};

/* Header + body into buf (at least PS_KMSG_MAX bytes).  Returns the
 * packet's length. */
size_t ps_kmsg_encode(void *buf, int type, const void *body, size_t len);

/* Checks a received packet: magic, version, layout, a known type and
 * exactly its body size, and a body that makes sense (a TCP key, option
 * lengths within bounds, a count within its array).  Returns 0 with *m
 * filled, or -1 (EPROTO) for anything else. */
int ps_kmsg_decode(const void *buf, size_t n, struct ps_kmsg *m);

/* A key the shared pool can carry: AF_INET or AF_INET6 TCP. */
bool ps_kmsg_key_ok(const struct ps_key *k);
/* A destination (UNSAFE): an AF_INET or AF_INET6 address and port. */
bool ps_kmsg_dest_ok(const struct ps_key *k);

/* Sends one packet with fd attached (fd < 0: none).  Never blocks, never
 * raises SIGPIPE.  Returns 0, or -1 with errno. */
int ps_kmsg_send(int s, const void *buf, size_t len, int fd);

/* Receives one packet without blocking into buf (PS_KMSG_MAX bytes), and
 * up to max_fds descriptors (close-on-exec) into fds.  A packet too long
 * for the buffer, or with more descriptors than max_fds, is refused: what
 * came with it is closed and -1 (EMSGSIZE) returned.  Returns the packet's
 * length (0: the peer closed), or -1 with errno. */
ssize_t ps_kmsg_recv(int s, void *buf, int *fds, int max_fds, int *nfds);

/* Closes n received descriptors. */
void ps_kmsg_close_fds(const int *fds, int n);

#endif
