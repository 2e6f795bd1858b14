# get_loop.py BASE N DOCROOT [SLEEP]: N requests.get() calls, each with a new
# Session (so a new connection each time); every 10th fetches a 256 KiB file.
# Prints "ok N" and exits 0 only if every response was 200 with the right body.
import sys, time, requests
base, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
want = {p: open(root + f, "rb").read()
        for p, f in (("/", "/index.html"), ("/big.bin", "/big.bin"))}
ok = bad = 0
for i in range(n):
    path = "/big.bin" if i % 10 == 9 else "/"
    try:
        r = requests.get(base + path, timeout=10)
        if r.status_code == 200 and r.content == want[path]:
            ok += 1
        else:
            bad += 1
            if bad <= 3:
                print(f"request {i} {path}: status {r.status_code}, {len(r.content)} bytes",
                      file=sys.stderr)
    except Exception as e:
        bad += 1
        if bad <= 3:
            print(f"request {i} {path}: {type(e).__name__}: {e}", file=sys.stderr)
    if pause:
        time.sleep(pause)
print(f"ok {ok}")
sys.exit(1 if bad else 0)
