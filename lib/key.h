/* The pool key: everything the peer or the network can see about a
 * connection (DESIGN.md section 2).  Two connections are interchangeable only
 * if their keys are byte-for-byte equal, so a key is zero-filled before it is
 * written and compared/hashed as raw bytes. */
#ifndef POOLSHIM_KEY_H
#define POOLSHIM_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define PS_DEVICE_LEN 16

struct ps_key {
	uint16_t family;      /* AF_INET, AF_INET6, AF_UNIX */
	uint16_t port;        /* network order */
	uint32_t scope_id;    /* IPv6 only */
	int32_t type;         /* SOCK_STREAM, without SOCK_NONBLOCK/SOCK_CLOEXEC */
	int32_t protocol;     /* as given to socket(); 0 and IPPROTO_TCP are the same TCP */
	uint16_t local_family;
	uint16_t local_port;  /* network order; non-zero ports are never pooled */
	uint32_t mark;        /* SO_MARK */
	int32_t rcvbuf;       /* SO_RCVBUF set before connect (window scale is fixed at SYN) */
	int32_t sndbuf;       /* SO_SNDBUF */
	uint8_t local_addr[16];
	char device[PS_DEVICE_LEN]; /* SO_BINDTODEVICE */
	uint8_t v6only;
	uint8_t pad[3];
	uint16_t path_len;    /* AF_UNIX */
	uint8_t addr[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* 4 or 16 bytes, or a path */
};

/* Fills *k for a destination.  Returns 0, or -1 when the destination is of a
 * kind the pool never holds (not AF_INET/AF_INET6/AF_UNIX, unnamed unix
 * socket, short sockaddr). */
int ps_key_init(struct ps_key *k, int type, int protocol, const struct sockaddr *dest, socklen_t len);

/* Records a local address the program bound.  Returns -1 if the binding
 * cannot be part of a key (a non-zero port, a foreign family). */
int ps_key_set_local(struct ps_key *k, const struct sockaddr *local, socklen_t len);

bool ps_key_equal(const struct ps_key *a, const struct ps_key *b);
uint32_t ps_key_hash(const struct ps_key *k);

/* "127.0.0.1:80", "[::1%2]:80", "unix:/run/x.sock" */
int ps_key_format(const struct ps_key *k, char *buf, size_t len);



/* Copies the local binding and option part of src (what the program set on
 * its socket before connect) into dst, keeping dst's destination. */
void ps_key_copy_local(struct ps_key *dst, const struct ps_key *src);
#endif
