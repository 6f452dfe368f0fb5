"""Opens a TCP connection to HOST PORT every 10 ms, sends an HTTP GET and prints, with
the time, whether an answer came back within 500 ms (a loaded machine can be slow to
answer; a path that is gone fails anyway). For traffic that ICMP cannot show: a VIP
routed by BGP is steered by port, nothing on the node answers a ping for it."""

import socket
import sys
import time

host, port = sys.argv[1], int(sys.argv[2])
while True:
    start = time.time()
    outcome = "failed"
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            if conn.recv(64):
                outcome = "answered"
    except OSError:
        pass
    print(f"[{time.time():.6f}] {outcome}", flush=True)
    time.sleep(max(0.0, 0.01 - (time.time() - start)))
