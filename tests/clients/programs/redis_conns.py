# redis_conns.py PORT SPEC: runs SPEC, a JSON list of connections, each a list
# of commands (each a list of words): for each connection, connect, send each
# command and read its whole reply, close.  Prints the replies as JSON, one
# list per connection (an error reply is a string starting with "-", a
# connection that failed ends with "!ExceptionName").
import json
import socket
import sys

from resp_wire import RespReader, resp_encode


port, spec = int(sys.argv[1]), json.loads(sys.argv[2])
out = []
for commands in spec:
    replies = []
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        r = RespReader(s)
        for cmd in commands:
            s.sendall(resp_encode(*cmd))
            replies.append(r.reply())
    except Exception as e:
        replies.append("!" + type(e).__name__)
    finally:
        s.close()
    out.append(replies)
print(json.dumps(out))
