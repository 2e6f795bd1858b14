/* key.c: what goes into a pool key and what does not (DESIGN.md section 2). */
#include "key.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

#include <criterion/criterion.h>

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
	return a;
}

static struct sockaddr_in6 v6(const char *ip, uint16_t port, uint32_t scope)
{
	struct sockaddr_in6 a;
	memset(&a, 0, sizeof a);
	a.sin6_family = AF_INET6;
	a.sin6_port = htons(port);
	a.sin6_scope_id = scope;
	cr_assert_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
	return a;
}

static struct ps_key key4(const char *ip, uint16_t port)
{
	struct ps_key k;
	struct sockaddr_in a = v4(ip, port);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	return k;
}

static struct ps_key key6(const char *ip, uint16_t port, uint32_t scope)
{
	struct ps_key k;
	struct sockaddr_in6 a = v6(ip, port, scope);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	return k;
}

Test(key, ipv4_fields_from_sockaddr_in)
{
	struct ps_key k = key4("127.0.0.1", 80);
	static const uint8_t lo[4] = { 127, 0, 0, 1 };
	cr_assert_eq(k.family, AF_INET);
	cr_assert_eq(k.port, htons(80));
	cr_assert_eq(k.type, SOCK_STREAM);
	cr_assert_eq(k.protocol, 0);
	cr_assert_eq(k.scope_id, 0);
	cr_assert_arr_eq(k.addr, lo, 4);
	/* nothing past the 4 address bytes */
	for (size_t i = 4; i < sizeof k.addr; i++)
		cr_assert_eq(k.addr[i], 0, "addr[%zu] = %u", i, k.addr[i]);
	cr_assert_eq(k.local_family, 0);
	cr_assert_eq(k.path_len, 0);
}

Test(key, ipv4_sin_zero_padding_ignored)
{
	struct sockaddr_in a = v4("10.1.2.3", 443), b = a;
	memset(b.sin_zero, 0xAB, sizeof b.sin_zero);
	struct ps_key ka, kb;
	cr_assert_eq(ps_key_init(&ka, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(ps_key_init(&kb, SOCK_STREAM, 0, (struct sockaddr *)&b, sizeof b), 0);
	cr_assert(ps_key_equal(&ka, &kb));
}

Test(key, ipproto_tcp_same_as_protocol_zero)
{
	struct sockaddr_in a = v4("127.0.0.1", 80);
	struct ps_key k0, k6;
	cr_assert_eq(ps_key_init(&k0, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(ps_key_init(&k6, SOCK_STREAM, IPPROTO_TCP, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert(ps_key_equal(&k0, &k6));
}

Test(key, port_differs_key_differs)
{
	struct ps_key a = key4("127.0.0.1", 80), b = key4("127.0.0.1", 81);
	cr_assert_not(ps_key_equal(&a, &b));
	struct ps_key c = key6("::1", 80, 0), d = key6("::1", 81, 0);
	cr_assert_not(ps_key_equal(&c, &d));
}

Test(key, address_differs_key_differs)
{
	struct ps_key a = key4("127.0.0.1", 80), b = key4("127.0.0.2", 80);
	cr_assert_not(ps_key_equal(&a, &b));
}

Test(key, ipv6_fields_and_scope_id_counts)
{
	struct ps_key a = key6("fe80::1", 80, 2), b = key6("fe80::1", 80, 3), c = key6("fe80::1", 80, 2);
	cr_assert_eq(a.family, AF_INET6);
	cr_assert_eq(a.scope_id, 2);
	cr_assert_eq(a.port, htons(80));
	cr_assert_eq(a.addr[0], 0xfe);
	cr_assert_eq(a.addr[1], 0x80);
	cr_assert_eq(a.addr[15], 1);
	cr_assert_not(ps_key_equal(&a, &b), "different scope ids must give different keys");
	cr_assert(ps_key_equal(&a, &c));
}

Test(key, ipv6_flowinfo_ignored)
{
	struct sockaddr_in6 a = v6("2001:db8::5", 443, 0), b = a;
	b.sin6_flowinfo = htonl(0x000abcde);
	struct ps_key ka, kb;
	cr_assert_eq(ps_key_init(&ka, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a), 0);
	cr_assert_eq(ps_key_init(&kb, SOCK_STREAM, 0, (struct sockaddr *)&b, sizeof b), 0);
	cr_assert(ps_key_equal(&ka, &kb));
	cr_assert_eq(ps_key_hash(&ka), ps_key_hash(&kb));
}

Test(key, ipv4_mapped_ipv6_is_its_own_key)
{
	struct ps_key mapped = key6("::ffff:127.0.0.1", 80, 0), plain = key4("127.0.0.1", 80);
	cr_assert_eq(mapped.family, AF_INET6);
	cr_assert_not(ps_key_equal(&mapped, &plain));
}

Test(key, bound_local_address_is_part_of_key)
{
	struct ps_key plain = key4("127.0.0.1", 80);
	struct ps_key bound1 = plain, bound2 = plain, other = plain;
	struct sockaddr_in l1 = v4("127.0.0.2", 0), l2 = v4("127.0.0.3", 0);
	cr_assert_eq(ps_key_set_local(&bound1, (struct sockaddr *)&l1, sizeof l1), 0);
	cr_assert_eq(ps_key_set_local(&bound2, (struct sockaddr *)&l1, sizeof l1), 0);
	cr_assert_eq(ps_key_set_local(&other, (struct sockaddr *)&l2, sizeof l2), 0);
	cr_assert_eq(bound1.local_family, AF_INET);
	cr_assert_eq(bound1.local_port, 0);
	cr_assert_eq(bound1.local_addr[0], 127);
	cr_assert_eq(bound1.local_addr[3], 2);
	cr_assert_not(ps_key_equal(&plain, &bound1), "a bound key must differ from an unbound one");
	cr_assert(ps_key_equal(&bound1, &bound2));
	cr_assert_not(ps_key_equal(&bound1, &other));
}

Test(key, bound_local_ipv6_address)
{
	struct ps_key plain = key6("::1", 80, 0), bound = plain;
	struct sockaddr_in6 l = v6("::1", 0, 0);
	cr_assert_eq(ps_key_set_local(&bound, (struct sockaddr *)&l, sizeof l), 0);
	cr_assert_eq(bound.local_family, AF_INET6);
	cr_assert_eq(bound.local_addr[15], 1);
	cr_assert_not(ps_key_equal(&plain, &bound));
}

Test(key, set_local_with_port_is_refused)
{
	struct ps_key k = key4("127.0.0.1", 80), before = k;
	struct sockaddr_in l = v4("127.0.0.1", 5555);
	cr_assert_eq(ps_key_set_local(&k, (struct sockaddr *)&l, sizeof l), -1);
	cr_assert(ps_key_equal(&k, &before), "a refused binding must leave the key alone");
	struct sockaddr_in6 l6 = v6("::1", 5555, 0);
	cr_assert_eq(ps_key_set_local(&k, (struct sockaddr *)&l6, sizeof l6), -1);
}

Test(key, set_local_foreign_or_short_is_refused)
{
	struct ps_key k = key4("127.0.0.1", 80);
	struct sockaddr_un un;
	memset(&un, 0, sizeof un);
	un.sun_family = AF_UNIX;
	strcpy(un.sun_path, "/tmp/x");
	cr_assert_eq(ps_key_set_local(&k, (struct sockaddr *)&un, sizeof un), -1);
	struct sockaddr_in l = v4("127.0.0.1", 0);
	cr_assert_eq(ps_key_set_local(&k, (struct sockaddr *)&l, sizeof l - 1), -1);
	cr_assert_eq(ps_key_set_local(&k, NULL, 0), -1);
}

static socklen_t un_addr(struct sockaddr_un *un, const char *path, size_t path_len)
{
	memset(un, 0, sizeof *un);
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, path, path_len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len);
}

Test(key, unix_path_key)
{
	struct sockaddr_un un;
	struct ps_key a, b;
	socklen_t len = un_addr(&un, "/run/x.sock", strlen("/run/x.sock") + 1);
	cr_assert_eq(ps_key_init(&a, SOCK_STREAM, 0, (struct sockaddr *)&un, len), 0);
	cr_assert_eq(a.family, AF_UNIX);
	cr_assert_eq(a.path_len, strlen("/run/x.sock"));
	cr_assert_arr_eq(a.addr, "/run/x.sock", strlen("/run/x.sock"));
	/* the same path passed with the full sockaddr length, or without its NUL */
	cr_assert_eq(ps_key_init(&b, SOCK_STREAM, 0, (struct sockaddr *)&un, sizeof un), 0);
	cr_assert(ps_key_equal(&a, &b), "trailing bytes after the path's NUL must not count");
	cr_assert_eq(ps_key_init(&b, SOCK_STREAM, 0, (struct sockaddr *)&un, len - 1), 0);
	cr_assert(ps_key_equal(&a, &b));
	/* a different path */
	len = un_addr(&un, "/run/y.sock", strlen("/run/y.sock") + 1);
	cr_assert_eq(ps_key_init(&b, SOCK_STREAM, 0, (struct sockaddr *)&un, len), 0);
	cr_assert_not(ps_key_equal(&a, &b));
}

Test(key, unix_abstract_key)
{
	struct sockaddr_un un;
	struct ps_key a, p;
	socklen_t len = un_addr(&un, "\0abc", 4);
	cr_assert_eq(ps_key_init(&a, SOCK_STREAM, 0, (struct sockaddr *)&un, len), 0);
	cr_assert_eq(a.path_len, 4);
	cr_assert_eq(a.addr[0], 0);
	cr_assert_arr_eq(a.addr + 1, "abc", 3);
	/* "@abc" must not be confused with the path "abc" */
	len = un_addr(&un, "abc", 4);
	cr_assert_eq(ps_key_init(&p, SOCK_STREAM, 0, (struct sockaddr *)&un, len), 0);
	cr_assert_not(ps_key_equal(&a, &p));
	char buf[64];
	ps_key_format(&a, buf, sizeof buf);
	cr_assert_str_eq(buf, "unix:@abc");
}

Test(key, unix_unnamed_is_refused)
{
	struct sockaddr_un un;
	struct ps_key k;
	/* unnamed: nothing after sun_family */
	socklen_t len = un_addr(&un, "", 0);
	cr_assert_eq(len, (socklen_t)sizeof(sa_family_t));
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&un, len), -1);
	/* longer than a sockaddr_un */
	un_addr(&un, "/x", 3);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&un, sizeof un + 1), -1);
}

Test(key, unsupported_family_is_refused)
{
	struct sockaddr_storage ss;
	struct ps_key k;
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_PACKET;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&ss, sizeof ss), -1);
	ss.ss_family = AF_UNSPEC;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&ss, sizeof ss), -1);
	ss.ss_family = AF_NETLINK;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&ss, sizeof ss), -1);
}

Test(key, short_sockaddr_is_refused)
{
	struct sockaddr_in a = v4("127.0.0.1", 80);
	struct sockaddr_in6 b = v6("::1", 80, 0);
	struct ps_key k;
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&a, sizeof a - 1), -1);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&b, sizeof b - 1), -1);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&a, 1), -1);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, NULL, sizeof a), -1);
}

Test(key, equal_keys_hash_equal)
{
	struct ps_key a = key4("192.168.1.10", 8080), b = key4("192.168.1.10", 8080);
	cr_assert(ps_key_equal(&a, &b));
	cr_assert_eq(ps_key_hash(&a), ps_key_hash(&b));
	struct ps_key c = key6("::1", 8080, 0), d = key6("::1", 8080, 0);
	cr_assert_eq(ps_key_hash(&c), ps_key_hash(&d));
	/* the hash looks at the bytes: 64 ports give (at least mostly) distinct values */
	uint32_t h[64];
	int distinct = 0;
	for (int i = 0; i < 64; i++) {
		struct ps_key k = key4("127.0.0.1", (uint16_t)(1000 + i));
		h[i] = ps_key_hash(&k);
		int dup = 0;
		for (int j = 0; j < i; j++)
			dup |= h[j] == h[i];
		distinct += !dup;
	}
	cr_assert_geq(distinct, 60);
}

Test(key, format_strings)
{
	char buf[160];
	struct ps_key k = key4("127.0.0.1", 80);
	cr_assert_eq(ps_key_format(&k, buf, sizeof buf), (int)strlen("127.0.0.1:80"));
	cr_assert_str_eq(buf, "127.0.0.1:80");
	k = key6("::1", 8080, 0);
	ps_key_format(&k, buf, sizeof buf);
	cr_assert_str_eq(buf, "[::1]:8080");
	k = key6("fe80::1", 443, 2);
	ps_key_format(&k, buf, sizeof buf);
	cr_assert_str_eq(buf, "[fe80::1%2]:443");
	k = key6("::ffff:127.0.0.1", 80, 0);
	ps_key_format(&k, buf, sizeof buf);
	cr_assert_str_eq(buf, "[::ffff:127.0.0.1]:80");
	struct sockaddr_un un;
	socklen_t len = un_addr(&un, "/run/x.sock", strlen("/run/x.sock") + 1);
	cr_assert_eq(ps_key_init(&k, SOCK_STREAM, 0, (struct sockaddr *)&un, len), 0);
	ps_key_format(&k, buf, sizeof buf);
	cr_assert_str_eq(buf, "unix:/run/x.sock");
}

Test(key, copy_local_keeps_destination)
{
	struct ps_key src = key4("127.0.0.1", 80), dst = key4("10.0.0.1", 9000);
	struct sockaddr_in l = v4("127.0.0.5", 0);
	cr_assert_eq(ps_key_set_local(&src, (struct sockaddr *)&l, sizeof l), 0);
	src.mark = 7;
	src.rcvbuf = 65536;
	src.sndbuf = 32768;
	strcpy(src.device, "lo");
	src.v6only = 1;
	ps_key_copy_local(&dst, &src);
	cr_assert_eq(dst.port, htons(9000));
	cr_assert_eq(dst.addr[0], 10);
	cr_assert_eq(dst.local_family, AF_INET);
	cr_assert_eq(dst.local_addr[3], 5);
	cr_assert_eq(dst.mark, 7);
	cr_assert_eq(dst.rcvbuf, 65536);
	cr_assert_eq(dst.sndbuf, 32768);
	cr_assert_str_eq(dst.device, "lo");
	cr_assert_eq(dst.v6only, 1);
}
