#!/usr/bin/env python3
"""Small test servers of the clients suite, each run by a fixture in conftest.py
as a process of its own (never with the shim preloaded):

    servers.py MODE DIR [options]

The server listens on 127.0.0.1, port 0 (so the kernel picks a free one),
writes the port to DIR/port once it listens, and keeps DIR/stats.json up to
date (replaced atomically on every change):

    {"accepted": connections accepted, "requests": requests received whole,
     "eofs": connections the client ended with an EOF, "resets": ... with an
     error, "sent_408": 408 answers sent on idle connections}

Modes:
  http11   HTTP/1.1 with keep-alive, one thread per connection.  GET or HEAD
           /id/X answers "id X\\n" (HEAD: the headers only); POST /id/X reads
           the Content-Length body and answers "id X len N sha256 H\\n".
           --chunked    answers with Transfer-Encoding: chunked, in several
                        writes, and a longer body ("id X\\n" 40 times)
           --idle-408 MS  after an answer, a connection idle for MS ms gets
                        "HTTP/1.1 408 Request Timeout" + Connection: close,
                        then is closed (as Apache and others do); a new
                        connection waits for its first request without limit
  http10   Python's http.server as it comes: ThreadingHTTPServer and a
           BaseHTTPRequestHandler with its default protocol_version
           (HTTP/1.0: the server closes every connection after its answer).
           Same paths and answers as http11.
  sink     reads every connection until EOF and counts it; answers nothing.
"""
import argparse
import hashlib
import http.server
import json
import os
import socket
import sys
import threading

_lock = threading.Lock()
_stats = {"accepted": 0, "requests": 0, "eofs": 0, "resets": 0, "sent_408": 0}
_dir = "."


def bump(key, n=1):
    with _lock:
        _stats[key] += n
        tmp = os.path.join(_dir, "stats.json.tmp")
        with open(tmp, "w") as f:
            json.dump(_stats, f)
        os.replace(tmp, os.path.join(_dir, "stats.json"))


def answer_body(method, path, body):
    ident = path.rsplit("/", 1)[-1]
    if method == "POST":
        return f"id {ident} len {len(body)} sha256 {hashlib.sha256(body).hexdigest()}\n".encode()
    return f"id {ident}\n".encode()


# --- http11 -------------------------------------------------------------------

class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buf += data

    def head(self):
        """The request line and headers, or None at EOF before any byte."""
        while b"\r\n\r\n" not in self.buf:
            try:
                self.fill()
            except EOFError:
                if self.buf:
                    raise ConnectionError("EOF inside a request")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        return head.decode("latin-1")

    def body(self, n):
        while len(self.buf) < n:
            self.fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


def serve_http11(sock, opts):
    c = Conn(sock)
    first = True
    try:
        while True:
            # a new connection waits for its first request; a kept one may time out
            sock.settimeout(None if first or not opts.idle_408 else opts.idle_408 / 1000)
            try:
                head = c.head()
            except socket.timeout:
                if c.buf:
                    return  # a request half sent: just close
                sock.settimeout(None)
                sock.sendall(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                             b"Content-Length: 0\r\n\r\n")
                bump("sent_408")
                return
            if head is None:
                bump("eofs")
                return
            first = False
            sock.settimeout(None)
            lines = head.split("\r\n")
            method, path, version = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            body = c.body(int(headers.get("content-length", "0")))
            bump("requests")
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            out = answer_body(method, path, body)
            if opts.chunked:
                out = out * 40
            hdr = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
            if close:
                hdr += "Connection: close\r\n"
            if opts.chunked:
                hdr += "Transfer-Encoding: chunked\r\n\r\n"
                sock.sendall(hdr.encode())
                if method != "HEAD":
                    for i in range(0, len(out), 100):
                        part = out[i:i + 100]
                        sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
                    sock.sendall(b"0\r\n\r\n")
            else:
                hdr += f"Content-Length: {len(out)}\r\n\r\n"
                sock.sendall(hdr.encode() + (b"" if method == "HEAD" else out))
            if close:
                return
    except (ConnectionError, OSError, ValueError):
        bump("resets")
    finally:
        sock.close()


def serve_sink(sock, opts):
    try:
        while sock.recv(65536):
            pass
        bump("eofs")
    except OSError:
        bump("resets")
    finally:
        sock.close()


def run_threaded(opts, handler):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(512)
    publish(ls.getsockname()[1])
    while True:
        s, _ = ls.accept()
        bump("accepted")
        threading.Thread(target=handler, args=(s, opts), daemon=True).start()


# --- http10: Python's http.server ------------------------------------------------

class Handler10(http.server.BaseHTTPRequestHandler):
    # protocol_version left at its default, "HTTP/1.0"

    def reply(self, body):
        bump("requests")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        self.reply(answer_body("GET", self.path, b""))

    def do_HEAD(self):
        self.reply(answer_body("HEAD", self.path, b""))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.reply(answer_body("POST", self.path, self.rfile.read(n)))

    def log_message(self, *args):
        pass


class Server10(http.server.ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True

    def process_request(self, request, client_address):
        bump("accepted")
        super().process_request(request, client_address)


def run_http10(opts):
    srv = Server10(("127.0.0.1", 0), Handler10)
    publish(srv.server_address[1])
    srv.serve_forever()


def publish(port):
    bump("accepted", 0)  # the first stats.json
    tmp = os.path.join(_dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, os.path.join(_dir, "port"))


def main():
    global _dir
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["http11", "http10", "sink"])
    ap.add_argument("dir")
    ap.add_argument("--chunked", action="store_true")
    ap.add_argument("--idle-408", type=int, default=0, metavar="MS")
    opts = ap.parse_args()
    _dir = opts.dir
    if opts.mode == "http11":
        run_threaded(opts, serve_http11)
    elif opts.mode == "sink":
        run_threaded(opts, serve_sink)
    else:
        run_http10(opts)


if __name__ == "__main__":
    sys.exit(main())
