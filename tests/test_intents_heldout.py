"""The issue's targets, measured on every held-out set.

* ``complaints_test.jsonl`` (148) — written before any classifier code by the author of the rules.
* ``complaints_blind.jsonl`` (220) — written by another author who never saw the rules.
* ``complaints_blind2.jsonl`` (320) — a third author, written on the day the learned weights were
  added; never read, scored in aggregate only (see intents/README.md for the count of looks).
* ``complaints_blind3.jsonl`` (320) — a fourth author (Wuhan, Hangzhou, a Henan county town), never
  read; its first aggregate score is the honest estimate for a new estate.
* ``complaints_blind4.jsonl`` (320) — a fifth author (Qingdao, Chongqing, Xiamen/Fuzhou, Harbin),
  written after blind3 was first scored, never read.
* ``complaints_blind5.jsonl`` (320) — a sixth author (Guangzhou/Shenzhen, Hefei, Lanzhou, Suzhou),
  written while dev15 was tuned on, never read.
* ``complaints_blind6.jsonl`` (320) — a seventh author (Beijing, Hainan, Ningbo/Wenzhou, Taiyuan),
  written while dev16 was tuned on, never read.
* ``complaints_blind7.jsonl`` … ``complaints_blind10.jsonl`` (320 each) — four more authors (Jiangxi/
  Anhui/Hubei; Inner Mongolia/Datong/Guangxi; Nanjing/Hefei/Yangzhou/Wenzhou; Xi'an/Shijiazhuang/
  Hainan), given tests/data/writer_instructions.md (version 1), written while dev17 … dev26 were
  tuned on, never read.
* ``complaints_blind11.jsonl``, ``complaints_blind12.jsonl`` (320 each) — two more authors (Tianjin/
  Qingdao/Yantai/Weifang; Nanning/Beihai/Guiyang/Chongqing), given version 2 of the instructions
  (a lift out of service is an emergency), written after the dev26 round, never read.
* ``complaints_blind13.jsonl`` … ``complaints_blind17.jsonl`` (320 each) — five more authors
  (Nanchang/Ganzhou/Haikou; Hohhot/Baotou/Datong; Beijing/Langfang/Tangshan; Changsha/Zhuzhou/
  Wuhan; Jinan/Qingdao/Shenyang/Dalian), version 2 of the instructions, written while dev37 …
  dev39 arrived and scored once, after the last change to the rules and weights; never read.

None is used for tuning (only aggregate scores are ever looked at); the dev sets
``complaints_dev*.jsonl`` are. See intents/README.md. A target still missed on a set is an
xfail with the measured number (strict, so it turns into a failure once the target is met and
the marker must be removed); targets are never lowered.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from intents import Classifier
from intents.cli import evaluate

DATA = Path(__file__).resolve().parent / "data"
HELD_OUT = (
    "complaints_test.jsonl",
    "complaints_blind.jsonl",
    *(f"complaints_blind{n}.jsonl" for n in range(2, 18)),
)
# Every dev file there is: a new one is checked for overlap with the held-out sets without an edit.
DEV = tuple(sorted(p.name for p in DATA.glob("complaints_dev*.jsonl")))


def _load(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (DATA / name).read_text(encoding="utf-8").splitlines() if x.strip()]


_reports: dict[str, dict[str, Any]] = {}


def _report(name: str) -> dict[str, Any]:
    if name not in _reports:
        _reports[name] = evaluate(Classifier.load(), _load(name))
    return _reports[name]


def test_sets_are_big_enough_well_formed_and_disjoint() -> None:
    held = {name: _load(name) for name in HELD_OUT}
    dev = {name: _load(name) for name in DEV}
    assert len(held["complaints_test.jsonl"]) >= 100
    assert len(held["complaints_blind.jsonl"]) >= 200
    for n in range(2, 18):
        assert len(held[f"complaints_blind{n}.jsonl"]) >= 300
    # A labelled file that is neither would be scored by nothing.
    assert {p.name for p in DATA.glob("complaints_*.jsonl")} == {*HELD_OUT, *DEV}
    assert len(dev["complaints_dev.jsonl"]) >= 400
    dev_texts = {r["text"] for recs in dev.values() for r in recs}
    for name, recs in held.items():
        # Only a count in the message: a failing run must not print held-out texts.
        shared = len({r["text"] for r in recs} & dev_texts)
        assert shared == 0, f"{shared} held-out texts of {name} are also in a dev set"
    for recs in [*held.values(), *dev.values()]:
        for r in recs:
            assert set(r) >= {"text", "category", "urgency", "angry", "location", "phone"}
            assert r["location"] is None or list(r["location"]) == ["building", "unit", "room", "area"]


Metric = Callable[[dict[str, Any]], float]
TARGETS: dict[str, tuple[Metric, float]] = {
    "category_accuracy": (lambda r: r["category_accuracy"], 0.92),
    "emergency_recall": (lambda r: r["urgency"]["emergency"][1], 0.95),
    "emergency_precision": (lambda r: r["urgency"]["emergency"][0], 0.80),
    "angry_f1": (lambda r: r["emotion"]["angry"][2], 0.80),
    "location_exact": (lambda r: r["location_exact"], 0.90),
}

# Measured misses (set, metric) → reason. Remove an entry when the target is met (strict xfail).
MISSES: dict[tuple[str, str], str] = {
    ("complaints_test.jsonl", "emergency_recall"): "test emergency recall is 17/18 = 0.944 < 0.95",
    ("complaints_blind.jsonl", "angry_f1"): "blind angry F1 is 0.779 (P 30/43, R 30/34) < 0.80",
    ("complaints_blind2.jsonl", "angry_f1"): "blind2 angry F1 is 0.791 (P 51/69, R 51/60) < 0.80",
    ("complaints_blind6.jsonl", "category_accuracy"): "blind6 category accuracy is 287/320 = 0.897 < 0.92",
    ("complaints_blind9.jsonl", "emergency_precision"): "blind9 emergency precision is 66/87 = 0.759 < 0.80",
    ("complaints_blind10.jsonl", "emergency_precision"): "blind10 emergency precision is 67/84 = 0.798 < 0.80",
    ("complaints_blind12.jsonl", "location_exact"): "blind12 location exact match is 272/320 = 0.850 < 0.90",
    ("complaints_blind13.jsonl", "location_exact"): "blind13 location exact match is 279/320 = 0.872 < 0.90",
    ("complaints_blind14.jsonl", "location_exact"): "blind14 location exact match is 269/320 = 0.841 < 0.90",
    ("complaints_blind16.jsonl", "angry_f1"): "blind16 angry F1 is 0.776 (P 64/83, R 64/82) < 0.80",
    ("complaints_blind17.jsonl", "emergency_precision"): "blind17 emergency precision is 66/84 = 0.786 < 0.80",
}


def _cases() -> list[Any]:
    cases = []
    for name in HELD_OUT:
        for metric in TARGETS:
            reason = MISSES.get((name, metric))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            cases.append(
                pytest.param(name, metric, marks=marks, id=f"{name.split('_')[1].split('.')[0]}-{metric}")
            )
    return cases


@pytest.mark.parametrize(("name", "metric"), _cases())
def test_target(name: str, metric: str) -> None:
    get, target = TARGETS[metric]
    assert get(_report(name)) >= target
