"""Load generator: Qlik Sense datagrams over UDP at a fixed rate, bounded in count and time.

Each datagram is a tagged `/proxy-session/` line whose user id carries a sequence number and
whose message carries the send time (ns), so a subscriber can count losses and latency. With
--junk, a share of the datagrams is random bytes. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import time

COMMANDS = ("Start session", "Open connection", "Close connection", "Stop session")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=int, required=True, help="datagrams per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--junk", type=float, default=0.0, help="share of junk datagrams, 0-1")
    parser.add_argument("--start", type=int, default=0, help="first sequence number")
    parser.add_argument("--users", type=int, default=5000, help="distinct users")
    args = parser.parse_args()
    if not 1 <= args.rate <= 200_000 or not 0 < args.seconds <= 600:
        raise SystemExit("rate 1-200000/s and seconds up to 600")
    count = int(args.rate * args.seconds)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = ("127.0.0.1", args.port)
    junk = random.Random(1)
    sent = valid = 0
    started = time.time()
    began = time.perf_counter()
    deadline = began + args.seconds + 5.0  # hard stop even if the pacing falls behind
    while sent < count and time.perf_counter() < deadline:
        due = int((time.perf_counter() - began) * args.rate) + 1
        while sent < min(due, count):
            sequence = args.start + sent
            if args.junk and junk.random() < args.junk:
                sock.sendto(junk.randbytes(junk.choice((0, 3, 50, 400))), target)
            else:
                command = COMMANDS[sequence % 4]
                user = f"u{sequence % args.users}"
                line = (
                    f"/proxy-session/;BENCH;{command};LOAD;{user};s{sequence};ctx;{time.time_ns()}"
                )
                sock.sendto(line.encode(), target)
                valid += 1
            sent += 1
        time.sleep(0.0005)
    elapsed = time.perf_counter() - began
    report = {"sent": sent, "valid": valid, "seconds": round(elapsed, 3), "started": started}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
