"""What a publish would cost if it waited for a replica (``WAIT 1``) before the sender
counts the frame as sent: the same publishes with and without it, in one run.

    python -m benchmarks.publish_wait [--frames 3000 --senders 1,20 --timeout-ms 100]

Starts a Redis master and one replica on loopback, and the chat server's broker against
the master; ``--senders`` concurrent senders publish ``--frames`` chat frames between
them, first as the server does (the publish script alone), then each followed by
``WAIT 1 <timeout>``, interleaved twice. Reports publish latency (p50, p99) and Redis's
CPU per publish (``INFO cpu`` of both servers), and how many WAITs timed out (a frame
the replica had not acknowledged in time).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

from benchmarks.fanout_procs import free_port, say
from chatserver.broker.redis_broker import RedisBroker
from chatserver.metrics import Metrics


def start(port: int, workdir: Path, master: int | None) -> subprocess.Popen[bytes]:
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(workdir)]
    if master is not None:
        args += ["--replicaof", "127.0.0.1", str(master)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cpu_seconds(port: int) -> float:
    info = redis.Redis(port=port).info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def run(
    broker: RedisBroker, frames: int, senders: int, wait_ms: int | None
) -> tuple[list[float], int]:
    latencies: list[float] = []
    timeouts = 0
    per_sender = frames // senders

    async def sender(n: int) -> None:
        nonlocal timeouts
        for i in range(per_sender):
            now = int(time.time() * 1000)
            frame = {"type": "chat", "user_id": f"u{n}", "timestamp": now, "payload": "x" * 20}
            started = time.perf_counter()
            await broker.publish_recent(
                "bench",
                author=f"u{n}",
                message_id=f"m{n}-{i // 20}",
                data=orjson.dumps(frame),
                timestamp_ms=now,
                keep_ms=5000,
            )
            if wait_ms is not None and await broker._client.wait(1, wait_ms) < 1:
                timeouts += 1
            latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(sender(n) for n in range(senders)))
    return latencies, timeouts


async def main_async(opts: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        master_port, replica_port = free_port(), free_port()
        (Path(tmp) / "m").mkdir()
        (Path(tmp) / "r").mkdir()
        procs = [
            start(master_port, Path(tmp) / "m", None),
            start(replica_port, Path(tmp) / "r", master_port),
        ]
        try:
            for _ in range(100):
                try:
                    if (
                        redis.Redis(port=replica_port).info("replication")["master_link_status"]
                        == "up"
                    ):
                        break
                except redis.RedisError:
                    pass
                await asyncio.sleep(0.1)
            broker = RedisBroker(
                f"redis://127.0.0.1:{master_port}/0", password=None, metrics=Metrics()
            )
            await broker.start()
            for _ in range(100):
                if (await broker.checks())["pubsub"]:
                    break
                await asyncio.sleep(0.05)
            await broker.subscribe("bench")
            columns = ("senders", "mode", "round", "p50 ms", "p99 ms", "Redis CPU µs/publish")
            print("| " + " | ".join((*columns, "WAIT timeouts")) + " |")
            print("|---|---|---|---|---|---|---|")
            for senders in opts.senders:
                for round_ in (1, 2):
                    for mode, wait in (("publish", None), ("publish + WAIT 1", opts.timeout_ms)):
                        cpu = cpu_seconds(master_port) + cpu_seconds(replica_port)
                        latencies, timeouts = await run(broker, opts.frames, senders, wait)
                        cpu = cpu_seconds(master_port) + cpu_seconds(replica_port) - cpu
                        q = statistics.quantiles(latencies, n=100)
                        print(
                            f"| {senders} | {mode} | {round_} | {1000 * q[49]:.2f} | "
                            f"{1000 * q[98]:.2f} | {1e6 * cpu / len(latencies):.0f} | {timeouts} |"
                        )
            await broker.close()
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=10)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--senders", type=lambda v: [int(x) for x in v.split(",")], default=[1, 20])
    parser.add_argument("--timeout-ms", type=int, default=100)
    opts = parser.parse_args(argv)
    if opts.frames < 100 or any(n < 1 for n in opts.senders):
        parser.error("--frames must be at least 100 and every --senders count at least 1")
    say("publishing with and without WAIT 1 (a master and a replica on loopback) ...")
    return asyncio.run(main_async(opts))


if __name__ == "__main__":
    sys.exit(main())
