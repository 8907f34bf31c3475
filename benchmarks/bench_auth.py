"""What access control costs per request: key lookup, and a request with and without keys.

The request is ``POST /v1/execute`` with empty code: it passes the Host/Origin guard, the key
check, the permission and the quota, then stops at validation (400) before any sandbox, so
the difference between the two rows is the cost of authentication itself. The baseline is the
same request to a gateway without keys, measured in the same run.

    .venv/bin/python benchmarks/bench_auth.py [--repeat 2000] [--keys 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from service.api.app import create_app
from service.auth.keys import KeyRecord, KeyStore, new_key
from service.auth.permissions import Role
from service.settings import Settings


def median_us(fn: Callable[[], object], repeat: int) -> float:
    for _ in range(min(50, repeat)):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=1000, help="keys in the key file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pyc-bench-") as tmp:
        key_file = Path(tmp) / "keys.jsonl"
        made: list[tuple[str, KeyRecord]] = [new_key(Role.DATA_SCIENTIST) for _ in range(args.keys)]
        key_file.write_text("".join(record.to_json() + "\n" for _, record in made))
        key = made[-1][0]
        store = KeyStore(key_file)
        lookup = median_us(lambda: store.authenticate(key), args.repeat)
        miss = median_us(lambda: store.authenticate(key[:-1] + "A"), args.repeat)

        clients = []
        for label, keyed in (("no keys (baseline)", False), (f"{args.keys} keys", True)):
            settings = Settings(
                execution_dir=Path(tmp) / label.split()[0],
                engine="subprocess",
                api_keys_file=key_file if keyed else None,
                rate_limit_per_minute=0,
            )
            headers = {"Authorization": f"Bearer {key}"} if keyed else {}
            client = TestClient(create_app(settings), base_url="http://127.0.0.1")
            clients.append((label, client.__enter__(), headers))
        try:
            # Alternate the two gateways so load from elsewhere on the machine hits both.
            samples: dict[str, list[float]] = {label: [] for label, _, _ in clients}
            for round_ in range(args.repeat + 50):
                for label, client, headers in clients:
                    started = time.perf_counter()
                    response = client.post("/v1/execute", json={"code": ""}, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 400, response.text
                    if round_ >= 50:
                        samples[label].append(elapsed)
        finally:
            for _, client, _ in clients:
                client.__exit__(None, None, None)
        rows = [(label, statistics.median(s) * 1e6) for label, s in samples.items()]
    print(
        f"key lookup (file of {args.keys} keys, stat included): hit {lookup:.1f} us, "
        f"wrong secret {miss:.1f} us"
    )
    print(f"{'POST /v1/execute (400 before any sandbox)':<44} {'median':>10}")
    for label, us in rows:
        print(f"{label:<44} {us:>8.0f} us")
    print(f"{'cost of authentication':<44} {rows[1][1] - rows[0][1]:>+8.0f} us")


if __name__ == "__main__":
    main()
