"""What verifying a store entry on load costs: MiniLM's fp32 and onnx-int8 artifacts, warm and cold page cache.

    flock /tmp/qlab-bench.lock python benchmarks/store_verify.py [--store DIR] [--repeats 7]

Builds (or finds) the variants in the store given (a temporary one by default), then times
``ModelStore.verify_entry`` (every file's size and xxh3-128 against the manifest) with the files in the page cache
(warm: the usual case, they were just written or read) and after ``posix_fadvise(DONTNEED)`` on each file (cold: as
after a reboot; the kernel may keep some pages), and the recipe's own load time for comparison. Prints medians and
ms per 100 MB. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def drop_from_page_cache(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fdatasync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def timed(fn, repeats: int, before=None) -> float:
    times = []
    for _ in range(repeats):
        if before:
            before()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=None, help="store root (default: a temporary one, built here)")
    parser.add_argument("--variants", default="fp32,onnx-int8")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from core.engine.variants import get_variant
    from core.env import environment
    from core.inputs.sources import resolve
    from core.storage.store import ModelStore, file_digest

    root = args.store or Path(tempfile.mkdtemp(prefix="qlab-verify-bench-"))
    store = ModelStore(root)
    source = resolve("minilm", "embedding")
    env = environment(None, "cpu")
    print(f"CPU: {env.get('cpu')}, {env.get('cores')} cores; instruction sets: {', '.join(env.get('instruction_sets') or [])}; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"store: {root}\n")
    print("| variant | files | MB | verify warm ms | ms per 100 MB warm | verify cold ms | ms per 100 MB cold | recipe load ms | verify / load (warm) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in [s.strip() for s in args.variants.split(",") if s.strip()]:
        started = time.perf_counter()
        loaded = get_variant(source, spec, store=store)
        built_s = time.perf_counter() - started
        entry = loaded.entry
        files = [p for p in entry.path.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        assert store.verify_entry(entry.key) == [], "the entry must be intact to time its verification"
        warm = timed(lambda: store.verify_entry(entry.key), args.repeats)
        cold = timed(lambda: store.verify_entry(entry.key), max(3, args.repeats // 2), before=lambda: drop_from_page_cache(entry.path))
        del loaded
        loads = []
        for _ in range(3):
            again = get_variant(source, spec, store=store)
            loads.append(again.load_s)
            del again
        load = statistics.median(loads)
        per100 = 100e6 / size
        print(f"| `{spec}` | {len(files)} | {size / 1e6:.1f} | {warm * 1e3:.1f} | {warm * 1e3 * per100:.1f} | {cold * 1e3:.1f} | "
              f"{cold * 1e3 * per100:.1f} | {load * 1e3:.1f} | {warm / load:.2f}x |", flush=True)
        print(f"  ({'built' if not entry.cache_hit else 'found'} in {built_s:.1f} s)", file=sys.stderr)
    big = max((p for p in Path(root, "artifacts").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    hash_only = timed(lambda: file_digest(big), args.repeats)
    print(f"\nxxh3-128 alone on the largest file ({big.stat().st_size / 1e6:.1f} MB, warm): {hash_only * 1e3:.1f} ms, "
          f"{big.stat().st_size / hash_only / 1e9:.2f} GB/s; load average {os.getloadavg()[0]:.2f} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
