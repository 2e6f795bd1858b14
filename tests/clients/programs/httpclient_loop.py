# httpclient_loop.py PORT N PLAN SERVER [BODY_SIZE]: N requests with Python's
# http.client, each on a new HTTPConnection that is closed after its answer
# was read to the end (so a new connection per request).  PLAN is a comma
# list of methods used in turn (GET, HEAD, POST); POSTs carry BODY_SIZE bytes
# (default 20480).  SERVER says what the answers must be:
#   nginx     GET and HEAD /index.html, POST /post ("posted\n")
#   py        servers.py: /id/I answers "id I\n", a POST "id I len N sha256 H\n"
#   py-chunked  the same, chunked, the body 40 times
# Prints one JSON object: "results" (per request: status and the body's
# sha256, or the error), "failures" (how many answers were wrong or failed)
# and "first_failures".  Exit status 0 only without failures.
import hashlib
import http.client
import json
import sys

port, n, plan, server = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
size = int(sys.argv[5]) if len(sys.argv) > 5 else 20480
index = open(sys.argv[6], "rb").read() if len(sys.argv) > 6 else b""


def body_of(i):
    seed = hashlib.sha256(b"%d" % i).digest()
    return (seed * (size // len(seed) + 1))[:size]


def expect(method, i, body):
    if server == "nginx":
        return b"posted\n" if method == "POST" else (b"" if method == "HEAD" else index)
    if method == "HEAD":
        return b""
    if method == "POST":
        out = b"id %d len %d sha256 %s\n" % (i, len(body), hashlib.sha256(body).hexdigest().encode())
    else:
        out = b"id %d\n" % i
    return out * 40 if server == "py-chunked" else out


results, failures, first = [], 0, []
for i in range(n):
    method = plan[i % len(plan)]
    body = body_of(i) if method == "POST" else None
    path = ("/post" if method == "POST" else "/index.html") if server == "nginx" else f"/id/{i}"
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        data = r.read()
        results.append([r.status, hashlib.sha256(data).hexdigest()[:16]])
        ok = r.status == 200 and data == expect(method, i, body)
        if server == "py-chunked":
            ok = ok and r.chunked
        if not ok:
            why = f"request {i} {method} {path}: status {r.status}, {len(data)} bytes: {data[:60]!r}"
    except Exception as e:
        results.append(["error", type(e).__name__])
        ok, why = False, f"request {i} {method} {path}: {type(e).__name__}: {e}"
    finally:
        conn.close()
    if not ok:
        failures += 1
        if len(first) < 5:
            first.append(why)
print(json.dumps({"results": results, "failures": failures, "first_failures": first}))
sys.exit(1 if failures else 0)
