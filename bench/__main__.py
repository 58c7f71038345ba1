"""`make bench`: every benchmark in turn (or those named: `python -m bench spawn`); each
writes bench/results/<name>.json. Options go to the benchmarks named:
`python -m bench spawn --rounds 3`."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ["bench.spawn", "bench.slurm_rpc", "bench.quota_scan", "bench.git_sync"]


def main() -> int:
    failed = []
    # `python -m bench quota_scan` and `python -m bench bench.quota_scan` alike.
    args = sys.argv[1:]
    options = args[next((i for i, a in enumerate(args) if a.startswith("-")), len(args)) :]
    named = args[: len(args) - len(options)]
    names = [n if n.startswith("bench.") else f"bench.{n}" for n in named]
    for name in names or BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            print(f"{name}: not available ({e})")
            failed.append(name)
            continue
        try:
            module.main(options)
        except Exception as e:  # one failing benchmark must not hide the others
            print(f"{name} failed: {e!r}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
