"""Word weights learned from labelled complaints — the part of the reading the rules do not spell out.

The hand-written rules in ``rules.toml`` say what an experienced 客服 knows; residents keep finding
new ways to say the same thing. This file holds, for each word (a jieba token, or two adjacent
tokens) seen in at least two labelled complaints, how much more often it appears in each category,
in emergencies and in angry complaints than elsewhere (naive-Bayes log-odds, smoothed). The
classifier adds these to the rules' scores with the weights set in ``[learned]`` of the rules file.

It is plain data: ``wuye classify --learn A.jsonl B.jsonl`` rebuilds it from labelled files (the
same format as ``--evaluate``), so a property company can add its own residents' corrected
complaints and learn again; an administrator can read it, edit a weight, or switch it off with
``category_weight = 0``. Never learn from the held-out files you evaluate on.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Learned", "LearnedError", "LearnedScore", "features", "learn", "load_learned"]

FORMAT = 1
# A word seen fewer times than this says more about one author than about residents.
_MIN_COUNT = 2
# Additive smoothing of the counts: keeps one-off co-occurrences from getting large weights.
_ALPHA = 0.5


class LearnedError(ValueError):
    """The learned-weights file is unreadable or not in the expected shape."""


@dataclass(frozen=True)
class Learned:
    categories: tuple[str, ...]
    # word → log-odds of each category (in ``categories`` order), then of "emergency" and "angry"
    table: dict[str, list[float]]
    emergency_prior: float
    angry_prior: float
    trained_on: tuple[str, ...] = ()

    def score(self, feats: Collection[str]) -> LearnedScore:
        table = self.table
        # In the text's order, not a set's: a set's order changes with each process's string
        # hashing, and floats summed in another order can differ in the last bit (one text read
        # confidence 0.218 in one run and 0.219 in another). filter/map iterate in C, and each
        # word is looked up once (rows are non-empty lists, so filter(None) keeps exactly them).
        rows = list(filter(None, map(table.get, feats)))
        n = len(self.categories)
        if not rows:
            return LearnedScore(
                dict.fromkeys(self.categories, 0.0), self.emergency_prior, self.angry_prior, feats
            )
        sums = list(map(sum, zip(*rows, strict=True)))
        return LearnedScore(
            dict(zip(self.categories, sums[:n], strict=True)),
            self.emergency_prior + sums[n],
            self.angry_prior + sums[n + 1],
            feats,
        )

    def top_words(self, score: LearnedScore, category: str, n: int = 3) -> list[str]:
        """The learned words that pulled hardest towards ``category`` (for ``keywords``)."""
        if category not in self.categories:
            return []
        i = self.categories.index(category)
        table = self.table
        scored = [(row[i], f) for f in score.words if (row := table.get(f)) is not None and row[i] > 1.0]
        return [f for _, f in sorted(scored, reverse=True)[:n]]


class LearnedScore(NamedTuple):
    category: dict[str, float]
    emergency: float
    angry: float
    words: Collection[str]  # the text's words in text order (``features``); not all have weights


def _has_word(feature: str) -> bool:
    # Punctuation and spaces alone are not words (checked when learning, so reading stays cheap).
    return any("\u4e00" <= c <= "\u9fff" or c.isalnum() for c in feature)


def features(tokens: list[str]) -> dict[str, None]:
    """Words of a segmented text, each once, in text order: its tokens, then each pair of
    neighbouring tokens (a dict's keys: ordered, unlike a set)."""
    return dict.fromkeys(chain(tokens, map(str.__add__, tokens, tokens[1:])))


def _log_odds(count_in: int, n_in: int, count_out: int, n_out: int) -> float:
    return math.log((count_in + _ALPHA) / (n_in + 2 * _ALPHA)) - math.log(
        (count_out + _ALPHA) / (n_out + 2 * _ALPHA)
    )


def learn(
    records: Iterable[dict[str, Any]],
    categories: Iterable[str],
    tokenize: Callable[[str], list[str]],
    sources: Iterable[str] = (),
) -> Learned:
    """Count words per label over labelled complaints (``text``, ``category``, ``urgency``, ``angry``)."""
    cats = tuple(categories)
    df: dict[str, Counter[str]] = defaultdict(Counter)
    n_cat: Counter[str] = Counter()
    n = n_emerg = n_angry = 0
    for rec in records:
        cat = rec["category"]
        emerg = rec.get("urgency") == "emergency"
        angry = bool(rec.get("angry"))
        n += 1
        n_cat[cat] += 1
        n_emerg += emerg
        n_angry += angry
        for f in features(tokenize(rec["text"])):
            c = df[f]
            c[cat] += 1
            c["#all"] += 1
            c["#emergency"] += emerg
            c["#angry"] += angry
    if n == 0:
        raise LearnedError("没有可学习的标注数据")
    table: dict[str, list[float]] = {}
    for f, c in df.items():
        total = c["#all"]
        if total < _MIN_COUNT or not _has_word(f):
            continue
        row = [_log_odds(c[k], n_cat[k], total - c[k], n - n_cat[k]) for k in cats]
        row.append(_log_odds(c["#emergency"], n_emerg, total - c["#emergency"], n - n_emerg))
        row.append(_log_odds(c["#angry"], n_angry, total - c["#angry"], n - n_angry))
        table[f] = [round(v, 3) for v in row]
    return Learned(
        categories=cats,
        table=table,
        emergency_prior=round(math.log((n_emerg + _ALPHA) / (n - n_emerg + _ALPHA)), 3),
        angry_prior=round(math.log((n_angry + _ALPHA) / (n - n_angry + _ALPHA)), 3),
        trained_on=tuple(sources),
    )


def dump(learned: Learned, path: Path) -> None:
    """One word per line, so a diff after re-learning shows which words moved."""
    head = {
        "format": FORMAT,
        "trained_on": list(learned.trained_on),
        "categories": list(learned.categories),
        "emergency_prior": learned.emergency_prior,
        "angry_prior": learned.angry_prior,
    }
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append('  "words": {')
    rows = [
        f"    {json.dumps(w, ensure_ascii=False)}: {json.dumps(learned.table[w])}"
        for w in sorted(learned.table)
    ]
    lines.append(",\n".join(rows))
    lines.append("  }")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load_learned(path: Path) -> Learned:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LearnedError(f"学习得到的词权重文件 {path} 不存在") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LearnedError(f"学习得到的词权重文件 {path} 无法读取: {exc}") from None
    except json.JSONDecodeError as exc:
        raise LearnedError(
            f"学习得到的词权重文件 {path} 第 {exc.lineno} 行: JSON 格式错误 ({exc.msg})"
        ) from None
    try:
        if data.get("format") != FORMAT:
            raise LearnedError(f"学习得到的词权重文件 {path}: 不支持的 format {data.get('format')!r}")
        cats = tuple(str(c) for c in data["categories"])
        width = len(cats) + 2
        table: dict[str, list[float]] = data["words"]
        for word, row in table.items():
            if not isinstance(row, list) or len(row) != width:
                raise LearnedError(f"学习得到的词权重文件 {path}: {word!r} 应有 {width} 个数字")
        return Learned(
            categories=cats,
            table=table,
            emergency_prior=float(data["emergency_prior"]),
            angry_prior=float(data["angry_prior"]),
            trained_on=tuple(data.get("trained_on", ())),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, LearnedError):
            raise
        raise LearnedError(f"学习得到的词权重文件 {path} 内容不完整: {exc!r}") from None
