"""``python -m bench``: run every benchmark and print one table.

Targets (checked here, never in unit tests): a boot storm of 1,000 phones served at
>= 500 req/s with p99 < 250 ms on 2 cores; cached renders >= 20,000/s; daemon RSS
< 150 MiB with 1,000 phones; under hostile load (200 garbage connections, a MAC scan, a
login brute force) legitimate fetches keep p99 <= max(2x the calm p99, 100 ms).
"""

from __future__ import annotations

import argparse
import sys

from provd import logs

from . import appws_hostile, config_items, hostile, micro, provision, storm


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--phones", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--provision-phones", type=int, default=300)
    parser.add_argument(
        "--only",
        choices=["micro", "storm", "provision", "appws", "hostile", "items"],
        action="append",
    )
    args = parser.parse_args()
    logs.configure("warning", fmt="kv")
    only = set(args.only or ["micro", "storm", "provision", "appws", "hostile", "items"])
    rows: list[tuple[str, str, str]] = []
    if "micro" in only:
        rows += micro.run()
    if "storm" in only:
        rows += storm.run(args.phones, args.concurrency)
    if "provision" in only:
        rows += provision.run(args.provision_phones)
    if "appws" in only:
        rows += appws_hostile.run()
    if "hostile" in only:
        rows += hostile.run()
    if "items" in only:
        rows += config_items.run()
    widths = [max(len(r[i]) for r in [("benchmark", "rate", "time"), *rows]) for i in range(3)]
    header = ("benchmark", "rate", "time / latency")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
