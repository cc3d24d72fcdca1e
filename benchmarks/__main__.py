"""``python -m benchmarks``: run the suite, print the tables, write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import bench_hash, bench_index, bench_load, bench_startup, bench_store
from benchmarks.common import (
    CACHE_DIR,
    LOADED,
    REPO_ROOT,
    CpuWatch,
    machine_info,
    markdown_table,
)

QUICK_SIZES = (100_000, 1_000_000)
FULL_SIZES = (100_000, 1_000_000, 10_000_000)
FULL_PYTX_MAX = 1_000_000
"""python-threatexchange's index at 10M takes minutes to build and ~9 GB at peak."""
QUICK_PYTX_MAX = 100_000
LOAD_ENTRIES = 1_000_000
QUICK_LOAD_ENTRIES = 100_000
STARTUP_SIZES = (1_000_000,)
"""10M (the issue's bar) only with --startup-size 10m: filling PostgreSQL takes minutes."""
QUICK_STARTUP_SIZES = (100_000,)


def _sizes(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if not part:
            continue
        mult = 1
        if part[-1] in "km":
            mult = 1000 if part[-1] == "k" else 1_000_000
            part = part[:-1]
        value = int(float(part) * mult)
        if value < 1000:
            raise argparse.ArgumentTypeError(f"size {value} is below 1000")
        out.append(value)
    if not out:
        raise argparse.ArgumentTypeError("no sizes given")
    return out


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="safehold side by side with python-threatexchange and FAISS (same run).",
    )
    p.add_argument("--quick", action="store_true", help="small corpus and sizes (~1 minute)")
    p.add_argument(
        "--only",
        choices=("hash", "index", "store", "load", "startup"),
        help="run one benchmark only",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        help="index sizes, e.g. 100000,1000000,10000000 or 100k,1m,10m "
        "(default: 100k,1M,10M; 100k,1M with --quick)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "BENCHMARKS.md",
        help="Markdown report to write (default: BENCHMARKS.md at the repo root)",
    )
    p.add_argument(
        "--pytx-max-size",
        type=_sizes,
        default=None,
        help="largest index size to run python-threatexchange's index at "
        "(default: 1M; 100k with --quick; 10m to include 10M, which takes minutes and ~9 GB)",
    )
    p.add_argument(
        "--load-size",
        type=_sizes,
        default=None,
        help="PDQ entries in the bank for the HTTP load benchmark (default: 1M; 100k with --quick)",
    )
    p.add_argument(
        "--startup-size",
        type=_sizes,
        default=None,
        help="PDQ entries a replica loads at start-up, e.g. 10m or 1m,10m (default: 1M; "
        "100k with --quick; 10M fills PostgreSQL for minutes)",
    )
    p.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for other processes to go "
        "quiet (for shared machines; default: don't wait)",
    )
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=argparse.SUPPRESS)
    return p.parse_args(argv)


# --------------------------------------------------------------------------- other load


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, steal) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def _own_cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class LoadMonitor:
    """CPU time the rest of the machine used while we ran (noisy neighbours)."""

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = _cpu_jiffies()
        self.own0 = _own_cpu_seconds()
        self.load0 = os.getloadavg()[0]

    def finish(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        busy, steal = _cpu_jiffies()
        own = _own_cpu_seconds() - self.own0
        busy_s = (busy - self.busy0) / self.hz
        return {
            "wall_s": round(wall, 1),
            "own_cpu_s": round(own, 1),
            "other_cpu_s": round(max(0.0, busy_s - own), 1),
            "other_cores_avg": round(max(0.0, busy_s - own) / wall, 2) if wall else 0.0,
            "steal_s": round((steal - self.steal0) / self.hz, 1),
            "loadavg_at_start": round(self.load0, 2),
        }


# --------------------------------------------------------------------------- report


def command_line(argv: Sequence[str]) -> str:
    exe = Path(sys.executable)
    try:
        shown = str(exe.relative_to(REPO_ROOT))
    except ValueError:
        shown = str(exe)
    return shlex.join([shown, "-m", "benchmarks", *argv])


def machine_section(info: dict[str, Any], command: str, load: dict[str, float]) -> str:
    pk = info["packages"]
    rows = [
        ["CPU", info["cpu"]],
        ["cores", f"{info['usable_cores']} usable ({info['logical_cores']} logical)"],
        ["RAM", f"{info['ram_gib']} GiB"],
        ["OS", info["os"]],
        ["Python", info["python"]],
        ["packages", ", ".join(f"{k} {v}" for k, v in pk.items())],
        ["date", info["date"]],
        ["command", f"`{command}`"],
        ["run time", f"{load['wall_s']:.0f} s"],
        [
            "other load",
            f"{load['other_cores_avg']:.2f} cores busy on average outside this run "
            f"(load average {load['loadavg_at_start']} at start; {load['steal_s']} s steal)",
        ],
    ]
    return markdown_table(["", "value"], rows)


def build_report(
    info: dict[str, Any],
    command: str,
    load: dict[str, float],
    hash_results: bench_hash.HashResults | None,
    index_results: bench_index.IndexResults | None,
    store_results: bench_store.StoreResults | None = None,
    load_results: bench_load.LoadResults | None = None,
    startup_results: bench_startup.StartupResults | None = None,
) -> str:
    parts = [
        "# Benchmarks",
        "",
        "Generated by `benchmarks/` (see `benchmarks/README.md` for what is measured and "
        "how to read it). Every number below comes from the same run, on this machine; "
        "all inputs are synthetic (generated pictures, random hashes).",
        "",
        "## Machine and run",
        "",
        machine_section(info, command, load),
        "",
    ]
    if load["other_cores_avg"] >= LOADED:
        parts += [
            f"> **Note:** other processes used {load['other_cores_avg']:.2f} cores on "
            "average during this run; 2-core figures and tail latencies are depressed "
            "accordingly. Rerun on an idle machine for clean numbers.",
            "",
        ]
    if hash_results is not None:
        parts += ["## PDQ hashing", "", bench_hash.render(hash_results), ""]
    if index_results is not None:
        parts += ["## PDQ index (radius 31)", "", bench_index.render(index_results), ""]
    if store_results is not None:
        parts += ["## Bank storage (bulk import)", "", bench_store.render(store_results), ""]
    if load_results is not None:
        parts += [
            "## Scanning service under load (HTTP on loopback)",
            "",
            bench_load.render(load_results),
            "",
        ]
    if startup_results is not None:
        parts += ["## Replica start-up", "", bench_startup.render(startup_results), ""]
    return "\n".join(parts).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(raw)
    command = command_line(raw)
    info = machine_info()
    with CpuWatch(min_wall=0.0) as now:
        time.sleep(1.0)
    if (now.other_cores or 0.0) >= LOADED:
        print(
            f"warning: other processes are using {now.other_cores:.2f} cores; they will "
            "skew the numbers (see the 'other load' columns; --wait-idle can help)"
        )
    monitor = LoadMonitor()
    cache: Path = args.cache_dir
    cache.mkdir(parents=True, exist_ok=True)

    hash_results = index_results = None
    store_results = None
    if args.only in (None, "hash"):
        specs = bench_hash.QUICK_SPECS if args.quick else bench_hash.FULL_SPECS
        hcfg = bench_hash.HashConfig(
            specs=specs,
            min_seconds=0.5 if args.quick else 1.5,
            rounds=1 if args.quick else 3,
            cache_dir=cache,
            wait_idle=args.wait_idle,
        )
        hash_results = bench_hash.run(hcfg)
    if args.only in (None, "index"):
        sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
        icfg = bench_index.IndexConfig(
            sizes=tuple(sizes),
            n_planted=400 if args.quick else 1600,
            n_random=100 if args.quick else 400,
            min_seconds=0.5 if args.quick else 2.0,
            single_budget_s=1.5 if args.quick else 8.0,
            pytx_max_size=(
                args.pytx_max_size[0]
                if args.pytx_max_size
                else (QUICK_PYTX_MAX if args.quick else FULL_PYTX_MAX)
            ),
            cache_dir=cache,
            wait_idle=args.wait_idle,
        )
        index_results = bench_index.run(icfg)

    if args.only in (None, "store"):
        store_results = bench_store.run(
            sizes=(100_000,) if args.quick else (1_000_000,), cache_dir=cache
        )

    load_results = startup_results = None
    if args.only in (None, "load"):
        entries = (args.load_size or [QUICK_LOAD_ENTRIES if args.quick else LOAD_ENTRIES])[0]
        lcfg = bench_load.LoadConfig(
            entries=entries,
            duration_s=2.0 if args.quick else 10.0,
            warmup_s=0.5 if args.quick else 2.0,
            pytx_budget_s=1.5 if args.quick else 5.0,
            wait_idle=args.wait_idle,
            cache_dir=cache,
        )
        load_results = bench_load.run(lcfg)
    if args.only in (None, "startup"):
        sizes = args.startup_size or (QUICK_STARTUP_SIZES if args.quick else STARTUP_SIZES)
        startup_results = bench_startup.run(tuple(sizes), cache_dir=cache, wait_idle=args.wait_idle)

    load = monitor.finish()
    report = build_report(
        info,
        command,
        load,
        hash_results,
        index_results,
        store_results,
        load_results,
        startup_results,
    )
    output: Path = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(report, encoding="utf-8")
    raw_json = {
        "machine": info,
        "command": command,
        "load": load,
        "hash": hash_results.to_json() if hash_results else None,
        "index": index_results.to_json() if index_results else None,
        "store": store_results.to_json() if store_results else None,
        "service_load": load_results.to_json() if load_results else None,
        "startup": startup_results.to_json() if startup_results else None,
    }
    raw_path = cache / f"results-{output.stem}.json"
    raw_path.write_text(json.dumps(raw_json, indent=1, default=str))
    print()
    print(report)
    print(f"wrote {output} (raw results: {raw_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
