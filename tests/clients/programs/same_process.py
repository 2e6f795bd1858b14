# same_process.py MODE N: a server and its client in ONE process.  A threaded
# server is started on 127.0.0.1, the client makes N requests against it, one
# connection each, then the server is shut down, which joins every handler
# thread.  Each handler serves its connection until the client's EOF (as
# keep-alive servers do), so the shutdown waits for every connection to be
# closed for real.  MODE:
#   socketserver  socketserver.ThreadingTCPServer, a line echo handler
#   xmlrpc        SimpleXMLRPCServer with ThreadingMixIn and an HTTP/1.1
#                 (keep-alive) handler; a new ServerProxy per call
# Prints JSON: the answers and the seconds the whole took.
import json
import socket
import socketserver
import sys
import threading
import time
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

mode, n = sys.argv[1], int(sys.argv[2])
t0 = time.monotonic()
answers = []

if mode == "socketserver":
    class Echo(socketserver.StreamRequestHandler):
        def handle(self):
            for line in self.rfile:  # until EOF
                self.wfile.write(b"echo " + line)
                self.wfile.flush()

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    th.start()
    for i in range(n):
        with socket.create_connection(srv.server_address, timeout=10) as s:
            s.sendall(b"%d\n" % i)
            buf = b""
            while not buf.endswith(b"\n"):
                data = s.recv(4096)
                if not data:
                    break
                buf += data
            answers.append(buf.decode())
else:
    class Handler(SimpleXMLRPCRequestHandler):
        protocol_version = "HTTP/1.1"

    class Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
        pass

    srv = Server(("127.0.0.1", 0), requestHandler=Handler, logRequests=False)
    srv.register_function(pow)
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    th.start()
    url = "http://%s:%d/" % srv.server_address
    for i in range(n):
        with xmlrpc.client.ServerProxy(url) as proxy:
            answers.append(proxy.pow(2, i))

srv.shutdown()
srv.server_close()  # joins the handler threads
th.join()
print(json.dumps({"answers": answers, "seconds": round(time.monotonic() - t0, 3)}))
