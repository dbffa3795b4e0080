#!/usr/bin/env python3
"""A small fault-injecting HTTP proxy for the s3:// tests.

    s3-fault-proxy.py PORT_FILE UPSTREAM [upstream-checks]   (UPSTREAM: http://127.0.0.1:4568)

Listens on 127.0.0.1 (a free port, written to PORT_FILE) and forwards every
request to UPSTREAM, unless a fault is armed.  Faults are armed through the
proxy itself:

    GET /__proxy/set?mode=MODE[&n=N][&match=TEXT][&delay_ms=MS]
    GET /__proxy/stats      counters, one "name value" per line
    GET /__proxy/log        one "METHOD PATH?QUERY STATUS" line per request

Modes (a fault with n=N hits the next N requests whose "METHOD PATH?QUERY"
contains TEXT, then the proxy passes again):
    pass      forward everything
    fail503   answer 503 SlowDown
    reset     read part of the request body, then reset the connection
    slow      forward, sleeping DELAY_MS per 64 KiB of each body (a slow link)
    readonly  answer 403 AccessDenied to PUT, POST and DELETE (a read-only
              bucket policy, which s3rver cannot enforce)
    full      answer 507 XMinioStorageFull to bodies over 64 KiB (a full
              server, as MinIO reports it)
    corrupt   flip one byte of the body in transit (what the payload checksum
              must catch)

Like AWS S3 (and unlike s3rver), the proxy checks every body against its
x-amz-content-sha256 header when that is a hex digest, and answers 400
XAmzContentSHA256Mismatch on a mismatch (stats: sha_checked, sha_mismatch).
With a third argument "upstream-checks" (a server that checks payloads
itself, radosgw) it still counts but forwards the body: the server refuses.

It also follows multipart uploads as the client drives them: one opens when
an InitiateMultipartUpload (POST ?uploads=) gets its UploadId and closes when
the client sends the AbortMultipartUpload (DELETE ?uploadId=, whatever the
answer: s3rver implements none) or a CompleteMultipartUpload succeeds.

    GET /__proxy/uploads    the open ones, one "PATH UPLOADID" per line
"""
import hashlib
import http.client
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATE = {"mode": "pass", "n": 0, "match": "", "delay_ms": 0}
STATS = {"requests": 0, "503": 0, "resets": 0, "403": 0, "507": 0, "slowed": 0,
         "inflight": 0, "inflight_max": 0, "sha_checked": 0, "sha_mismatch": 0,
         "corrupted": 0}
LOG = []
UPLOADS = {}  # upload id -> path, while the client has neither completed nor aborted it
UPSTREAM = None
UPSTREAM_CHECKS = False

ERROR = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
         '<Message>{msg}</Message><Resource>{res}</Resource>'
         '<RequestId>fault-proxy</RequestId></Error>')


def fault_for(line, method, length):
    """The fault to apply to this request, or None."""
    with LOCK:
        mode = STATE["mode"]
        if mode == "pass":
            return None
        if mode == "readonly":
            return "readonly" if method in ("PUT", "POST", "DELETE") else None
        if mode == "full":
            return "full" if method in ("PUT", "POST") and length > 65536 else None
        if STATE["match"] not in line:
            return None
        if mode == "slow":
            return "slow"
        if STATE["n"] <= 0:
            return None
        STATE["n"] -= 1
        return mode


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def note(self, status):
        """Log the request before its answer goes out: a client that reads
        the log right after its answer must find the line there."""
        if not getattr(self, "noted", True):
            with LOCK:
                LOG.append(f"{self.line} {status}")
            self.noted = True

    def error(self, status, code, msg):
        STATS[str(status)] = STATS.get(str(status), 0) + 1
        body = ERROR.format(code=code, msg=msg, res=self.path.split("?")[0]).encode()
        self.note(status)
        self.reply(status, body, [("Content-Type", "application/xml")])
        return status

    def control(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/__proxy/set":
            with LOCK:
                STATE.update(mode=q.get("mode", "pass"), n=int(q.get("n", "0")),
                             match=q.get("match", ""), delay_ms=int(q.get("delay_ms", "0")))
            return self.reply(200, b"ok\n")
        if url.path == "/__proxy/stats":
            with LOCK:
                text = "".join(f"{k} {v}\n" for k, v in sorted(STATS.items()))
            return self.reply(200, text.encode())
        if url.path == "/__proxy/uploads":
            with LOCK:
                text = "".join(f"{p} {u}\n" for u, p in sorted(UPLOADS.items()))
            return self.reply(200, text.encode())
        if url.path == "/__proxy/log":
            with LOCK:
                text = "".join(line + "\n" for line in LOG)
            return self.reply(200, text.encode())
        return self.reply(404, b"no such control\n")

    def read_body(self, length, delay):
        chunks, left = [], length
        while left > 0:
            chunk = self.rfile.read(min(65536, left))
            if not chunk:
                raise ConnectionError("the client closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
            if delay:
                time.sleep(delay)
        return b"".join(chunks)

    def payload_ok(self, body):
        claimed = self.headers.get("x-amz-content-sha256", "")
        if len(claimed) != 64 or any(c not in "0123456789abcdef" for c in claimed):
            return True
        ok = hashlib.sha256(body).hexdigest() == claimed
        with LOCK:
            STATS["sha_checked"] += 1
            STATS["sha_mismatch"] += 0 if ok else 1
        return ok

    def reset(self, length):
        self.rfile.read(min(length, 65536) // 2)
        STATS["resets"] += 1
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def forward(self, body, delay):
        conn = http.client.HTTPConnection(UPSTREAM.hostname, UPSTREAM.port, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conn.request(self.command, self.path, body=body if body else None, headers=headers)
        resp = conn.getresponse()
        try:
            data = resp.read()
        except http.client.IncompleteRead as e:
            data = e.partial  # pass on what the server sent (s3rver: empty ranges)
        conn.close()
        self.track(resp.status, data)
        if delay:
            for _ in range(0, len(data), 65536):
                time.sleep(delay)
        hdrs = [(k, v) for k, v in resp.getheaders()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        self.note(resp.status)
        self.send_response(resp.status)
        for k, v in hdrs:
            self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length", "0"))
            self.end_headers()
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        return resp.status

    def track(self, status, data):
        """Follow the multipart uploads (see /__proxy/uploads)."""
        path, _, query = self.path.partition("?")
        q = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
        with LOCK:
            if self.command == "POST" and "uploads" in q and status == 200:
                m = re.search(rb"<UploadId>([^<]+)</UploadId>", data)
                if m:
                    UPLOADS[m.group(1).decode()] = path
            elif "uploadId" in q and (self.command == "DELETE" or
                                      (self.command == "POST" and status == 200)):
                UPLOADS.pop(q["uploadId"], None)

    def handle_any(self):
        if self.path.startswith("/__proxy/"):
            return self.control()
        length = int(self.headers.get("Content-Length", "0") or 0)
        line = f"{self.command} {self.path}"
        self.line, self.noted = line, False
        fault = fault_for(line, self.command, length)
        with LOCK:
            STATS["requests"] += 1
        status = "reset"
        try:
            if fault == "reset":
                return self.reset(length)
            delay = STATE["delay_ms"] / 1000.0 if fault == "slow" else 0
            if delay:
                STATS["slowed"] += 1
            body = self.read_body(length, delay)
            if fault == "corrupt" and body:
                body = bytes([body[0] ^ 0xff]) + body[1:]
                with LOCK:
                    STATS["corrupted"] += 1
            if not self.payload_ok(body) and not UPSTREAM_CHECKS:
                status = self.error(400, "XAmzContentSHA256Mismatch",
                                    "The provided 'x-amz-content-sha256' header does not match "
                                    "what was computed.")
            elif fault == "fail503":
                status = self.error(503, "SlowDown", "Please reduce your request rate.")
            elif fault == "readonly":
                if self.command == "DELETE" and "uploadId=" in self.path:
                    self.track(403, b"")  # the client did send its abort
                status = self.error(403, "AccessDenied", "Access Denied")
            elif fault == "full":
                status = self.error(507, "XMinioStorageFull",
                                    "Storage backend has reached its minimum free drive "
                                    "threshold.")
            else:
                with LOCK:
                    STATS["inflight"] += 1
                    STATS["inflight_max"] = max(STATS["inflight_max"], STATS["inflight"])
                try:
                    status = self.forward(body, delay)
                finally:
                    with LOCK:
                        STATS["inflight"] -= 1
        finally:
            self.note(status)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


def main():
    global UPSTREAM, UPSTREAM_CHECKS
    port_file, UPSTREAM = sys.argv[1], urllib.parse.urlsplit(sys.argv[2])
    UPSTREAM_CHECKS = sys.argv[3:] == ["upstream-checks"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{server.server_address[1]}\n")
    import os
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
