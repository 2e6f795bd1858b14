# rawhttp.py PORT N SEND [PAUSE_MS] [TIMEOUT]: N requests over plain sockets,
# one connection each: connect, wait PAUSE_MS (default 0), send
# "GET /id/I HTTP/1.1" (keep-alive: no Connection header), read the answer to
# its end (Content-Length), close.  SEND is how the request is written:
#   sendall        socket.sendall
#   sendfile       socket.sendfile() from a file holding the request
#   os.sendfile    os.sendfile() from that file
#   mixed          sendall, sendfile and os.sendfile in turn
#   unread         sendall and sendfile in turn; after a sendfile the program
#                  closes without reading the answer (it does not want it)
# TIMEOUT (seconds) is set on the socket if given (Python then polls before
# each call).  The answer to /id/I must be "200" with the body "id I\n".
# Prints one JSON object like httpclient_loop.py's; exit 0 only without failures.
import json
import os
import socket
import sys
import tempfile
import time

port, n, send = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
pause = int(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0
timeout = float(sys.argv[5]) if len(sys.argv) > 5 else None
modes = {"mixed": ["sendall", "sendfile", "os.sendfile"],
         "unread": ["sendall", "sendfile-unread"]}.get(send, [send])


def read_answer(s):
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = s.recv(65536)
        if not data:
            raise EOFError(f"EOF after {len(buf)} bytes: {buf[:60]!r}")
        buf += data
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v)
    while len(body) < length:
        data = s.recv(65536)
        if not data:
            raise EOFError("EOF inside the body")
        body += data
    return status, body


results, failures, first = [], 0, []
tmp = tempfile.TemporaryFile()
for i in range(n):
    mode = modes[i % len(modes)]
    req = b"GET /id/%d HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: rawhttp\r\n\r\n" % i
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout if timeout else 10)
    try:
        s.connect(("127.0.0.1", port))
        if timeout is None:
            s.settimeout(None)
        if pause:
            time.sleep(pause)
        if mode == "sendall":
            s.sendall(req)
        else:
            tmp.seek(0)
            tmp.truncate()
            tmp.write(req)
            tmp.flush()
            tmp.seek(0)
            if mode.startswith("sendfile"):
                s.sendfile(tmp)
            else:
                off = 0
                while off < len(req):
                    off += os.sendfile(s.fileno(), tmp.fileno(), off, len(req) - off)
        if mode.endswith("-unread"):
            results.append(["not read"])
            continue
        status, body = read_answer(s)
        results.append([status, body.decode("latin-1")])
        ok = status == 200 and body == b"id %d\n" % i
        why = f"request {i} ({mode}): status {status}, body {body[:60]!r}"
    except Exception as e:
        results.append(["error", type(e).__name__])
        ok, why = False, f"request {i} ({mode}): {type(e).__name__}: {e}"
    finally:
        s.close()
    if not ok:
        failures += 1
        if len(first) < 5:
            first.append(why)
print(json.dumps({"results": results, "failures": failures, "first_failures": first}))
sys.exit(1 if failures else 0)
