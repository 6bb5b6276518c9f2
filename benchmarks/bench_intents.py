"""Benchmark of the intents classifier beside plain ``jieba.lcut`` (prints numbers; not a test).

Run: .venv/bin/python benchmarks/bench_intents.py
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = [ROOT / "tests/data/complaints_dev.jsonl", ROOT / "tests/data/complaints_test.jsonl"]


def _texts() -> list[str]:
    out: list[str] = []
    for p in DATA:
        out += [
            json.loads(line)["text"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()
        ]
    return out


def _cold(cmd: list[str], stdin: str, runs: int = 5) -> float:
    """Median wall time from process start until the first result line arrives."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(stdin.encode())
        p.stdin.flush()
        p.stdout.readline()
        times.append(time.perf_counter() - t0)
        p.stdin.close()
        p.wait()
    return statistics.median(times)


def _per_text(*fns, texts: list[str], rounds: int = 5) -> list[list[float]]:
    """Per-text time (µs) of each function, best of several rounds.

    The best of several rounds removes scheduler noise and keeps per-text differences; the
    functions take turns on each text, so a machine that speeds up or slows down during the
    run (a shared VM does) affects them alike and the ratio between them stays fair.
    """
    best = [[float("inf")] * len(texts) for _ in fns]
    for _ in range(rounds):
        for i, t in enumerate(texts):
            for fn, b in zip(fns, best, strict=True):
                t0 = time.perf_counter_ns()
                fn(t)
                b[i] = min(b[i], (time.perf_counter_ns() - t0) / 1000)
    return best


def _p99(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.99) - 1)]


def main() -> None:
    texts = _texts()
    first = texts[0] + "\n"
    jieba_cmd = [
        sys.executable,
        "-c",
        "import sys,jieba,logging; jieba.setLogLevel(logging.WARNING); "
        "print(jieba.lcut(sys.stdin.readline()), flush=True)",
    ]
    cold_ours = _cold([sys.executable, "-m", "intents.cli"], first)
    cold_jieba = _cold(jieba_cmd, first)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from intents.classifier import Classifier, _import_jieba

    jieba = _import_jieba()
    t0 = time.perf_counter()
    clf = Classifier.load()
    load_s = time.perf_counter() - t0
    jieba.lcut("预热")  # load jieba's global dictionary for the plain baseline
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    ours, plain = _per_text(clf.classify, jieba.lcut, texts=texts)
    ratio = [a / b for a, b in zip(ours, plain, strict=True)]
    # The same, each function alone over a whole pass of the texts (its caches warm for itself
    # only); passes alternate, ours then jieba's, five times, so drift still hits both alike.
    alone_ours = [float("inf")] * len(texts)
    alone_plain = [float("inf")] * len(texts)
    for _ in range(5):
        for fn, best in ((clf.classify, alone_ours), (jieba.lcut, alone_plain)):
            (one,) = _per_text(fn, texts=texts, rounds=1)
            best[:] = map(min, best, one)
    ratio_alone = [a / b for a, b in zip(alone_ours, alone_plain, strict=True)]

    def throughput(fn) -> float:
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
        return len(texts) / (time.perf_counter() - t0)

    tp_ours = statistics.median(throughput(clf.classify) for _ in range(3))
    tp_plain = statistics.median(throughput(jieba.lcut) for _ in range(3))
    long_text = "楼道的垃圾一直没人清理，" * 800  # ~10,000 characters
    long_us = _per_text(clf.classify, texts=[long_text], rounds=3)[0][0]

    print(f"texts: {len(texts)} (mean {statistics.mean(len(t) for t in texts):.0f} chars)")
    print(f"{'measure':<34}{'wuye classify':>16}{'jieba.lcut':>14}")
    print(f"{'cold start to first result (s)':<34}{cold_ours:>16.3f}{cold_jieba:>14.3f}")
    print(f"{'per-text median (µs)':<34}{statistics.median(ours):>16.1f}{statistics.median(plain):>14.1f}")
    print(f"{'per-text p99 (µs)':<34}{_p99(ours):>16.1f}{_p99(plain):>14.1f}")
    print(f"{'throughput (texts/s)':<34}{tp_ours:>16.0f}{tp_plain:>14.0f}")
    print(f"{'median of per-text ratio':<34}{statistics.median(ratio):>16.2f}{1.0:>14.2f}")
    print(
        f"{'  each alone: median (µs)':<34}{statistics.median(alone_ours):>16.1f}"
        f"{statistics.median(alone_plain):>14.1f}"
    )
    print(f"{'  each alone: median ratio':<34}{statistics.median(ratio_alone):>16.2f}{1.0:>14.2f}")
    print(f"Classifier.load() in-process: {load_s:.3f} s (jieba dictionary loaded once)")
    print(f"10,000-character text: {long_us / 1000:.1f} ms")
    print(
        f"resident memory (max RSS): {rss1 / 1024:.0f} MiB after loading (+{(rss1 - rss0) / 1024:.0f} MiB for classifier + jieba)"
    )


if __name__ == "__main__":
    main()
