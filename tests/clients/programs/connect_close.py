# connect_close.py PORT N: N times socket(), connect(), close(), with no I/O
# in between.  Then prints "done" and waits (up to 10 s) for its standard
# input to end, so that the test can read the server's counters while this
# process, and whatever it may still hold open, is alive.
import select
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", port))
    s.close()
print("done", flush=True)
select.select([sys.stdin], [], [], 10)
