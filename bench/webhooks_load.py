"""Webhook receiver under load: deliveries/s accepted, ack latency, events lost, final state.

A Guesty sandbox (Svix-signed deliveries, one ``svix-id`` per message) makes ~1,600 booking
changes; the deliveries plus duplicates, shuffled, are POSTed by a few concurrent clients to a
real uvicorn receiver on 127.0.0.1 while its applier refetches and writes in the same process.
"Lost" = acknowledged (2xx) message ids missing from the inbox; "wrong" = bookings whose final
row differs from a fresh full sync. The sandbox runs on a simulated clock, so refetches cost no
rate-limit waits: the figures are the receiver's, not the provider's.

    uv run python bench/webhooks_load.py [--deliveries 2000] [--clients 4] [--provider guesty]
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@dataclass
class LoadResult:
    provider: str
    deliveries: int
    unique: int
    clients: int
    acked: int
    wall_seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    apply_seconds: float
    lost: int
    wrong_final_state: int
    bookings_checked: int
    refetches: int
    inbox: dict[str, int]

    @property
    def accepted_per_second(self) -> float:
        return self.acked / self.wall_seconds if self.wall_seconds else 0.0

    def lines(self) -> list[str]:
        return [
            f"provider: {self.provider} (Svix-signed)"
            if self.provider == "guesty"
            else f"provider: {self.provider}",
            f"deliveries: {self.deliveries} ({self.unique} unique + "
            f"{self.deliveries - self.unique} duplicates, shuffled) from {self.clients} clients",
            f"accepted: {self.acked} in {self.wall_seconds:.2f} s = "
            f"{self.accepted_per_second:.0f} deliveries/s",
            f"ack latency: p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
            f"max {self.max_ms:.1f} ms",
            f"applied all in {self.apply_seconds:.2f} s after the last ack "
            f"({self.refetches} refetches for {self.bookings_checked} bookings)",
            f"inbox: {self.inbox}",
            f"events lost: {self.lost}",
            f"bookings not in their final state: {self.wrong_final_state}",
        ]


def _key(hook: Any) -> str:
    return str(hook.headers.get("svix-id") or hook.body)


def run_load(
    tmp: Path,
    clock: Any,
    *,
    provider: str = "guesty",
    deliveries: int = 2000,
    clients: int = 4,
    seed: int = 5,
    apply_timeout: float = 120.0,
    apply: bool = True,
) -> LoadResult:
    import httpx

    from pms_cli.webhooks.server import BackgroundServer
    from tests.webhooks.conftest import Rig, same_state

    rig = Rig(provider, tmp, clock, configure=False, secret_ttl=30.0, listings=20, reservations=300)
    # The provider's documented limits would only add simulated waits (and move the shared
    # clock past Svix's 5-minute window): the figures measure the receiver.
    rig.conn.settings["rate_limits"] = ["1000000/1"]
    rig.store.update_connection(rig.conn.id, settings=rig.conn.settings)
    rig.options.apply = apply
    server = BackgroundServer(rig.app).start()
    try:
        rig.configure(server.url)
        unique_target = int(deliveries * 0.8)
        touched: set[str] = set()
        while len(rig.sender.outbox) < unique_target:
            touched |= set(rig.create(10)) | set(rig.update(40))
            rig.cancel(sorted(touched)[len(touched) // 2])
            clock.advance(1)
        rng = random.Random(seed)
        hooks = rig.sender.take()
        batch = hooks + [rng.choice(hooks) for _ in range(deliveries - len(hooks))]
        rng.shuffle(batch)
        latencies: list[float] = []
        nonlocal_acks = [0]
        acked: set[str] = set()
        lock = threading.Lock()

        def client(part: list[Any]) -> None:
            # TCP_NODELAY: httpx writes headers and body separately; without it Nagle + delayed
            # ACK add ~40 ms per request on loopback (a client artefact, not the receiver's).
            nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            transport = httpx.HTTPTransport(socket_options=nodelay)
            with httpx.Client(timeout=30.0, transport=transport) as http:
                for hook in part:
                    start = time.perf_counter()
                    status = http.post(hook.url, content=hook.body, headers=hook.headers)
                    elapsed = time.perf_counter() - start
                    with lock:
                        latencies.append(elapsed)
                        if 200 <= status.status_code < 300:
                            nonlocal_acks[0] += 1
                            acked.add(_key(hook))

        threads = [
            threading.Thread(target=client, args=(batch[i::clients],)) for i in range(clients)
        ]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        acks = nonlocal_acks[0]
        applied_at = time.perf_counter()
        deadline = applied_at + apply_timeout
        busy = {"pending", "processing", "retry"}
        while time.perf_counter() < deadline:
            counts = rig.store.inbox_counts(rig.conn.id)
            if not busy & set(counts):
                break
            time.sleep(0.05)
        apply_seconds = time.perf_counter() - applied_at
        counts = rig.store.inbox_counts(rig.conn.id)
        stored = {
            r.dedupe_key.removeprefix("svix:")
            for r in rig.store.inbox_list(rig.conn.id, limit=10 * deliveries)
        }
        lost = len(acked - stored) if provider == "guesty" else 0
        refetches = rig.receiver.applier.stats.refetches
    finally:
        server.stop()
    truth, mine = rig.truth(tmp), rig.bookings()
    wrong = sum(1 for i in touched if i not in mine or not same_state(mine[i], truth[i]))
    ordered = sorted(latencies)
    result = LoadResult(
        provider=provider,
        deliveries=len(batch),
        unique=len(hooks),
        clients=clients,
        acked=acks,
        wall_seconds=wall,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        max_ms=ordered[-1] * 1000,
        apply_seconds=apply_seconds,
        lost=lost,
        wrong_final_state=wrong,
        bookings_checked=len(touched),
        refetches=refetches,
        inbox=counts,
    )
    rig.store.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--provider", default="guesty")
    parser.add_argument("--no-apply", action="store_true", help="receiver only, no applier")
    args = parser.parse_args()

    import os

    from tests.conftest import SharedClock

    with tempfile.TemporaryDirectory() as tmp:
        # Hermetic like the tests: no real keyring, config and data under the temp dir.
        os.environ["PMS_CONFIG_DIR"] = str(Path(tmp) / "config")
        os.environ["PMS_DATA_DIR"] = str(Path(tmp) / "data")
        result = run_load(
            Path(tmp),
            SharedClock(),
            provider=args.provider,
            deliveries=args.deliveries,
            clients=args.clients,
            apply=not args.no_apply,
            apply_timeout=0.0 if args.no_apply else 120.0,
        )
    for line in result.lines():
        print(line)


if __name__ == "__main__":
    main()
