"""Receiver benchmark: signed Stripe webhooks into a real uvicorn server over loopback.

Why a hand-rolled driver: a general HTTP client costs more CPU per request than
the receiver itself, and on a small machine the driver shares the cores with the
server. The driver here pre-builds every signed request and speaks minimal
HTTP/1.1 keep-alive on raw asyncio streams, in its own process.

The server is one uvicorn worker with the embedded journal (group-committed
fsync). After the run the server is stopped with SIGTERM (graceful drain) and
the journal is read back: every 200 must be a record on disk.

    python -m arrecon.loadtest.bench_receiver --requests 20000 --connections 32 [--http h11]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

__all__ = ["BenchResult", "main", "run_benchmark"]

SECRET = "whsec_bench"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve(port: int, data_dir: str, http: str = "auto") -> None:
    """Server process: one uvicorn worker, embedded journal, no access log.

    `http="auto"` picks httptools (and uvloop) when installed, else h11/asyncio.
    """
    import uvicorn

    from arrecon.connectors.intake import JournalSink
    from arrecon.connectors.journal import Journal
    from arrecon.connectors.webhook import ReceiverSettings, create_app

    sink = JournalSink(Journal(Path(data_dir) / "raw"))
    app = create_app(ReceiverSettings(stripe_secrets=(SECRET,)), sink)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http=http)


def _requests(count: int, port: int) -> list[bytes]:
    """`count` distinct, signed Stripe events (about 700 bytes each)."""
    from arrecon.connectors.signatures import sign_stripe

    timestamp = int(time.time())
    out = []
    for i in range(count):
        charge = {
            "id": f"ch_bench{i:08d}",
            "object": "charge",
            "amount": 1000 + i % 5000,
            "currency": "usd",
            "customer": f"cus_{i % 997:04d}",
            "description": f"Invoice INV-{i:08d}",
            "metadata": {"invoice_number": f"INV-{i:08d}", "po_number": f"PO-{i % 3331}"},
            "balance_transaction": f"txn_bench{i:08d}",
            "status": "succeeded",
        }
        event = {
            "id": f"evt_bench{i:08d}",
            "object": "event",
            "type": "charge.succeeded",
            "created": timestamp,
            "livemode": False,
            "data": {"object": charge},
        }
        body = orjson.dumps(event)
        head = (
            f"POST /webhooks/stripe HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
            f"content-type: application/json; charset=utf-8\r\n"
            f"stripe-signature: {sign_stripe(body, SECRET, timestamp)}\r\n"
            f"user-agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    return out


@dataclass(frozen=True, slots=True)
class BenchResult:
    ok: int
    failed: int
    elapsed_s: float
    latencies_ms: list[float]

    @property
    def requests_per_s(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


async def _connection(
    port: int, queue: list[bytes], deadline: float, latencies: list[float], failures: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue and time.perf_counter() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000.0)
            if not head.startswith(b"HTTP/1.1 200"):
                failures.append(int(head[9:12]))
    finally:
        writer.close()


async def _drive(port: int, requests: list[bytes], connections: int, max_s: float) -> BenchResult:
    queue = list(reversed(requests))
    latencies: list[float] = []
    failures: list[int] = []
    started = time.perf_counter()
    deadline = started + max_s
    await asyncio.gather(
        *(_connection(port, queue, deadline, latencies, failures) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    return BenchResult(len(latencies) - len(failures), len(failures), elapsed, latencies)


def _wait_ready(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("receiver did not become ready")


def _count_journal(data_dir: Path) -> int:
    from arrecon.connectors.journal import JournalReader

    return sum(1 for _ in JournalReader(data_dir / "raw"))


def _implementations(http: str) -> str:
    """Which HTTP parser and event loop `auto` resolves to (they change the figures)."""
    import importlib.util

    def has(name: str) -> bool:
        return importlib.util.find_spec(name) is not None

    parser = http if http != "auto" else ("httptools" if has("httptools") else "h11")
    loop = "uvloop" if has("uvloop") else "asyncio"
    return f"http={parser} loop={loop}"


def _run_driver(port: int, requests: list[bytes], connections: int, max_s: float) -> BenchResult:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_drive(port, requests, connections, max_s))
    return uvloop.run(_drive(port, requests, connections, max_s))


def run_benchmark(
    requests: int, connections: int, max_s: float, http: str = "auto", warmup: int = 500
) -> tuple[BenchResult, int]:
    """Start the server, warm it up, drive the load, stop it; (result, journal records)."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="arrecon-bench-") as tmp:
        data_dir = Path(tmp)
        command = [sys.executable, "-m", "arrecon.loadtest.bench_receiver"]
        server = subprocess.Popen(
            [*command, "--serve", str(port), tmp, "--http", http],
            start_new_session=True,
        )
        try:
            _wait_ready(port)
            built = _requests(requests + warmup, port)
            _run_driver(port, built[:warmup], min(connections, 16), max_s)
            result = _run_driver(port, built[warmup:], connections, max_s)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        return result, _count_journal(data_dir) - warmup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto")
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(int(args.serve[0]), args.serve[1], args.http)
        return 0
    load_before = os.getloadavg()[0]  # other work on the machine skews every figure
    result, durable = run_benchmark(args.requests, args.connections, args.max_seconds, args.http)
    print(
        f"when: {datetime.now(UTC).isoformat(timespec='seconds')}  cpus: {os.cpu_count()}"
        f"  load before: {load_before:.1f}  {_implementations(args.http)}"
    )
    print(f"requests: {result.ok} ok, {result.failed} failed, in {result.elapsed_s:.2f} s")
    print(f"throughput: {result.requests_per_s:,.0f} req/s over {args.connections} connections")
    print(
        f"latency ms: p50 {result.percentile_ms(0.50):.2f}  p99 {result.percentile_ms(0.99):.2f}"
        f"  max {max(result.latencies_ms, default=0.0):.2f}"
        f"  mean {statistics.fmean(result.latencies_ms or [0.0]):.2f}"
    )
    print(f"durable: {durable} journal records for {result.ok} acknowledged requests")
    return 0 if durable >= result.ok and result.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
