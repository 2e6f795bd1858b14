# memcached_conns.py PORT N: N set/get cycles in memcached's text protocol,
# one connection per command: connect, "set key:I 0 0 L" + value, read
# "STORED", close; connect, "get key:I", read to "END", close.  Prints JSON:
# the value each get returned (or the error), and how many were wrong.
import json
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])


def one(command, end):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(command)
        buf = b""
        while not buf.endswith(end):
            data = s.recv(65536)
            if not data:
                raise EOFError(f"EOF after {buf[:60]!r}")
            buf += data
        return buf
    finally:
        s.close()


got, wrong = [], 0
for i in range(n):
    value = b"value-%d-" % i + b"x" * (i % 50)
    try:
        stored = one(b"set key:%d 0 0 %d\r\n%s\r\n" % (i, len(value), value), b"\r\n")
        answer = one(b"get key:%d\r\n" % i, b"END\r\n")
        got.append([stored.decode(), answer.decode("latin-1")])
        if stored != b"STORED\r\n" or \
                answer != b"VALUE key:%d 0 %d\r\n%s\r\nEND\r\n" % (i, len(value), value):
            wrong += 1
    except Exception as e:
        got.append(["!" + type(e).__name__])
        wrong += 1
print(json.dumps({"results": got, "failures": wrong}))
sys.exit(1 if wrong else 0)
