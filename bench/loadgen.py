"""Load generator: Qlik Sense datagrams over UDP at a fixed rate, bounded in count and time.

Each datagram is a tagged `/proxy-session/` line whose origin carries a sequence number and
whose message carries the send time (ns), so a subscriber can count losses and latency. With
--kind log, each is a log event (WARN or ERROR) of one of the four services in turn, in
qlik2mqtt's XML layout and Butler SOS's `;` format in turn, whose logger carries the sequence
number and whose message the send time. With --junk, a share of the datagrams is random bytes.
Loopback only.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import socket
import time

COMMANDS = ("Start session", "Open connection", "Close connection", "Stop session")
SOURCES = ("engine", "proxy", "repository", "scheduler")
TAIL_FIELDS = {"engine": 10, "proxy": 7, "repository": 7, "scheduler": 9}
"""How many fields follow the message in Butler SOS's line of each source."""


def log_event(sequence: int, sent_ns: int) -> bytes:
    """Log event `sequence`: its logger `Bench.Load.s<sequence>`, its message the send time."""
    source = SOURCES[sequence % 4]
    level = ("WARN", "ERROR")[sequence // 8 % 2]
    logger = f"Bench.Load.s{sequence}"
    if sequence // 4 % 2 == 0:  # qlik2mqtt's appenders: log4net XmlLayout, base64 values
        prefix = f"qseow-{source}"
        message = base64.b64encode(str(sent_ns).encode()).decode()
        return (
            f'<{prefix}:event logger="{logger}" timestamp="2026-12-02T01:00:00.0000000+01:00" '
            f'level="{level}" thread="1" domain="Bench" username="CORP\\svc">'
            f"<{prefix}:message>{message}</{prefix}:message><{prefix}:properties>"
            f'<{prefix}:data name="log4net:HostName" value="QkVOQ0g=" />'  # BENCH
            f"</{prefix}:properties></{prefix}:event>\r\n"
        ).encode()
    tail = ["(null)"] * TAIL_FIELDS[source]
    if source == "engine":
        tail[0] = "0"  # the engine's own proxy session
    head = f"/qseow-{source}/;{sequence};20261202T010000.000+0100;2026-12-02 01:00:00,000"
    return ";".join([head, level, "BENCH", logger, "CORP\\svc", str(sent_ns), *tail]).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=int, required=True, help="datagrams per second")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--junk", type=float, default=0.0, help="share of junk datagrams, 0-1")
    parser.add_argument("--start", type=int, default=0, help="first sequence number")
    parser.add_argument("--users", type=int, default=5000, help="distinct users")
    parser.add_argument("--kind", choices=("sessions", "log"), default="sessions")
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
            elif args.kind == "log":
                sock.sendto(log_event(sequence, time.time_ns()), target)
                valid += 1
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
