# redis_conns.py PORT SPEC: runs SPEC, a JSON list of connections, each a list
# of commands (each a list of words): for each connection, connect, send each
# command and read its whole reply, close.  Prints the replies as JSON, one
# list per connection (an error reply is a string starting with "-", a
# connection that failed ends with "!ExceptionName").
import json
import socket
import sys


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Reader:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def line(self):
        while b"\r\n" not in self.buf:
            self.more()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return "-" + rest.decode()
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.more()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode("latin-1")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError(line)


port, spec = int(sys.argv[1]), json.loads(sys.argv[2])
out = []
for commands in spec:
    replies = []
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        r = Reader(s)
        for cmd in commands:
            s.sendall(encode(cmd))
            replies.append(r.reply())
    except Exception as e:
        replies.append("!" + type(e).__name__)
    finally:
        s.close()
    out.append(replies)
print(json.dumps(out))
