"""Soak: the bridge for a bounded time against mosquitto, mixed valid and junk traffic, and a
broker restart in the middle. Reports events sent, delivered, lost, and RSS at start and end.

    .venv/bin/python -m bench.soak [--seconds 60] [--rate 2000] [--junk 0.2]

The subscriber keeps a persistent session on a broker with persistence, so what the bridge
delivers while the subscriber reconnects after the restart still counts.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
from pathlib import Path

from bench.common import (
    Broker,
    Subscription,
    free_port,
    load,
    rss_mb,
    start_target,
    wait_online,
    wait_settled,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--junk", type=float, default=0.2)
    args = parser.parse_args()
    if not 4 <= args.seconds <= 3600:
        raise SystemExit("--seconds 4 to 3600")
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    broker = Broker(work)
    broker.start()
    udp_port = free_port(socket.SOCK_DGRAM)
    bridge = start_target("bridge", work, broker.port, udp_port)
    subscription = Subscription(work, broker.port, "soak")
    try:
        subscription.start()
        subscription.ready(broker.port)
        wait_online(broker.port, log=work / "bridge.log")
        rss_start = rss_mb(bridge.pid, "VmRSS")
        half = args.seconds / 2
        first = load(udp_port, args.rate, half, args.junk)
        subscription.stop()
        broker.stop()  # the restart: the bridge queues what arrives meanwhile
        during = load(udp_port, args.rate, 2.0, args.junk, start=first["sent"])
        broker.start()
        subscription.start()
        second = load(udp_port, args.rate, half, args.junk, start=first["sent"] + during["sent"])
        sent_valid = first["valid"] + during["valid"] + second["valid"]
        wait_settled(subscription, sent_valid + 1, timeout=120)
        rss_end = rss_mb(bridge.pid, "VmRSS")
        rss_peak = rss_mb(bridge.pid, "VmHWM")
        alive = bridge.poll() is None
    finally:
        subscription.stop()
        bridge.terminate()
        bridge.wait(30)
        broker.stop()
    delivered = len({message.get("origin") for _, message in subscription.received()})
    report = {
        "seconds": args.seconds,
        "rate": args.rate,
        "junk_share": args.junk,
        "datagrams_sent": first["sent"] + during["sent"] + second["sent"],
        "events_sent": sent_valid,
        "events_delivered": delivered,
        "events_lost": sent_valid - delivered,
        "bridge_alive_at_end": alive,
        "rss_mb_start": round(rss_start, 1),
        "rss_mb_end": round(rss_end, 1),
        "rss_mb_peak": round(rss_peak, 1),
        "work_dir": str(work),
    }
    print(json.dumps(report, indent=2))
    raise SystemExit(0 if alive and delivered == sent_valid else 1)


if __name__ == "__main__":
    main()
