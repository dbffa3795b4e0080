#!/usr/bin/env python3
"""A small fault-injecting TCP proxy (the ssh:// tests put it before sshd).

    tcp-fault-proxy.py PORT_FILE UPSTREAM_HOST UPSTREAM_PORT

Listens on 127.0.0.1 on two free ports and writes "DATA_PORT CONTROL_PORT"
to PORT_FILE.  Every connection to DATA_PORT is forwarded to the upstream
server, byte for byte, unless a fault is armed.  A connection to
CONTROL_PORT takes one command line and answers "ok" (or "error ..."):

    pass                     forward everything at full speed
    slow RATE DELAY_MS       a slow link: at most RATE bytes/s each way, and
                             every byte DELAY_MS late
    stall                    forward nothing, in either direction, on old and
                             new connections, and close nothing (a dead link)
    reset AFTER              reset (RST) the connection that carries the next
                             AFTER bytes from client to server, once
    stats                    "connections N resets N bytes_up N bytes_down N"
"""
import socket
import struct
import sys
import threading
import time
from collections import deque

LOCK = threading.Lock()
STATE = {"mode": "pass", "rate": 0, "delay": 0.0, "reset_after": -1}
STATS = {"connections": 0, "resets": 0, "bytes_up": 0, "bytes_down": 0}
CHUNK = 16384


def set_mode(words):
    with LOCK:
        if words[0] == "pass":
            STATE.update(mode="pass", reset_after=-1)
        elif words[0] == "slow":
            STATE.update(mode="slow", rate=int(words[1]), delay=int(words[2]) / 1000.0)
        elif words[0] == "stall":
            STATE.update(mode="stall")
        elif words[0] == "reset":
            STATE.update(reset_after=int(words[1]))
        else:
            raise ValueError(f"unknown command '{words[0]}'")


def control(conn):
    with conn:
        words = conn.makefile("r").readline().split()
        try:
            if words and words[0] == "stats":
                with LOCK:
                    reply = " ".join(f"{k} {v}" for k, v in STATS.items())
            else:
                set_mode(words)
                reply = "ok"
        except (ValueError, IndexError) as e:
            reply = f"error {e}"
        conn.sendall((reply + "\n").encode())


class Pipe:
    """One direction of a connection: a reader queues what arrives with its
    time, a writer sends it on when the link state allows."""

    def __init__(self, conn, src, dst, up):
        self.conn, self.src, self.dst, self.up = conn, src, dst, up
        self.queue = deque()
        self.cond = threading.Condition()
        self.eof = False

    def read_loop(self):
        try:
            while True:
                data = self.src.recv(CHUNK)
                if not data:
                    break
                if self.up and self.count_for_reset(len(data)):
                    return self.conn.reset()
                with self.cond:
                    self.queue.append((time.monotonic(), data))
                    self.cond.notify()
        except OSError:
            pass
        with self.cond:
            self.eof = True
            self.cond.notify()

    def count_for_reset(self, n):
        with LOCK:
            STATS["bytes_up" if self.up else "bytes_down"] += n
            if STATE["reset_after"] < 0:
                return False
            STATE["reset_after"] -= n
            if STATE["reset_after"] > 0:
                return False
            STATE["reset_after"] = -1
            STATS["resets"] += 1
            return True

    def next_chunk(self):
        with self.cond:
            while not self.queue and not self.eof:
                self.cond.wait(0.2)
            return self.queue.popleft() if self.queue else None

    def write_loop(self):
        sent, start = 0, time.monotonic()
        try:
            while True:
                item = self.next_chunk()
                if item is None:
                    break
                arrived, data = item
                with LOCK:
                    mode, rate, delay = STATE["mode"], STATE["rate"], STATE["delay"]
                while mode == "stall":
                    time.sleep(0.05)
                    with LOCK:
                        mode, rate, delay = STATE["mode"], STATE["rate"], STATE["delay"]
                if mode == "slow":
                    now = time.monotonic()
                    if start + sent / rate < now:
                        sent, start = 0, now  # an idle link saves up no credit
                    wait = max(arrived + delay, start + (sent + len(data)) / rate) - now
                    if wait > 0:
                        time.sleep(wait)
                else:
                    sent, start = 0, time.monotonic()
                self.dst.sendall(data)
                sent += len(data)
                if not self.up:
                    with LOCK:
                        STATS["bytes_down"] += len(data)
            self.dst.shutdown(socket.SHUT_WR)
        except OSError:
            self.conn.close()


class Conn:
    def __init__(self, client, upstream):
        self.client, self.upstream = client, upstream
        self.pipes = [Pipe(self, client, upstream, True), Pipe(self, upstream, client, False)]

    def start(self):
        for p in self.pipes:
            threading.Thread(target=p.read_loop, daemon=True).start()
            threading.Thread(target=p.write_loop, daemon=True).start()

    def reset(self):
        try:
            self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    def close(self):
        for s in (self.client, self.upstream):
            try:
                s.close()
            except OSError:
                pass


def serve_data(listener, host, port):
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, port))
        except OSError:
            client.close()
            continue
        with LOCK:
            STATS["connections"] += 1
        Conn(client, upstream).start()


def main():
    port_file, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    data = socket.create_server(("127.0.0.1", 0))
    ctl = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve_data, args=(data, host, port), daemon=True).start()
    with open(port_file + ".tmp", "w") as f:
        f.write(f"{data.getsockname()[1]} {ctl.getsockname()[1]}\n")
    import os
    os.rename(port_file + ".tmp", port_file)
    while True:
        conn, _ = ctl.accept()
        control(conn)


if __name__ == "__main__":
    main()
