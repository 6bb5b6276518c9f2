"""`wuye classify`: one text per stdin line → one JSON object per stdout line; `--evaluate` scores a file.

Imports only the standard library and jieba (no aiogram/sqlalchemy) so it starts fast.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from intents.classifier import Classifier
from intents.rules import RulesError


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse would sys.exit(2) itself; main() turns this into its return code instead.
        raise _UsageError(message)


def _parser() -> _Parser:
    p = _Parser(
        prog="wuye classify",
        description="从标准输入逐行读取投诉文本（UTF-8），每行输出一个 JSON 分类结果。",
    )
    p.add_argument(
        "--evaluate", metavar="FILE.jsonl", help="评估带标注的文件，输出各类别的精确率/召回率/F1 和混淆矩阵"
    )
    p.add_argument(
        "--rules", metavar="FILE", help="规则文件（默认 intents/rules.toml 或环境变量 WUYE_RULES_FILE）"
    )
    p.add_argument(
        "--learn",
        nargs="+",
        metavar="FILE.jsonl",
        help="从带标注的文件重新学习词权重，写入规则文件 [learned] 指定的文件（或 --out）；不要用评估用的留出集",
    )
    p.add_argument("--out", metavar="FILE", help="--learn 的输出文件")
    p.add_argument(
        "--explain",
        action="store_true",
        help="调规则用：每行结果之外再输出各类别得分、生效的上下文规则和被忽略的关键词（JSON 键与默认输出不同）",
    )
    return p


def _prf(pairs: list[tuple[str, str]], labels: Sequence[str]) -> dict[str, tuple[float, float, float, int]]:
    out: dict[str, tuple[float, float, float, int]] = {}
    for lab in labels:
        tp = sum(1 for g, p in pairs if g == lab and p == lab)
        fp = sum(1 for g, p in pairs if g != lab and p == lab)
        fn = sum(1 for g, p in pairs if g == lab and p != lab)
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        # The same F1 as 2PR/(P+R), from the counts: no rounding on the way (28/35 is 0.8, not 0.7999…).
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        out[lab] = (prec, rec, f1, tp + fn)
    return out


def evaluate(clf: Classifier, records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Scores of ``clf`` on labelled records; also used by the tests to assert the targets."""
    cat_pairs: list[tuple[str, str]] = []
    urg_pairs: list[tuple[str, str]] = []
    emo_pairs: list[tuple[str, str]] = []
    loc_ok = loc_n = phone_ok = phone_n = 0
    errors: list[dict[str, Any]] = []
    for rec in records:
        res = clf.classify(rec["text"])
        cat_pairs.append((rec["category"], res.category))
        if "urgency" in rec:
            urg_pairs.append((rec["urgency"], res.urgency))
        if "angry" in rec:
            emo_pairs.append(("angry" if rec["angry"] else "calm", res.emotion))
        got = res.to_dict()
        if "location" in rec:
            loc_n += 1
            loc_ok += got["location"] == rec["location"]
        if "phone" in rec:
            phone_n += 1
            phone_ok += got["phone"] == rec["phone"]
        if res.category != rec["category"] or (rec.get("urgency") not in (None, res.urgency)):
            errors.append(
                {
                    "text": rec["text"],
                    "want": [rec["category"], rec.get("urgency")],
                    "got": [res.category, res.urgency],
                }
            )
    cats = list(dict.fromkeys([*clf.categories, *(g for g, _ in cat_pairs)]))
    n = len(cat_pairs)
    return {
        "n": n,
        "categories": cats,
        "category_accuracy": sum(g == p for g, p in cat_pairs) / n if n else 0.0,
        "category": _prf(cat_pairs, cats),
        "confusion": {g: {p: sum(1 for a, b in cat_pairs if a == g and b == p) for p in cats} for g in cats},
        "urgency_accuracy": sum(g == p for g, p in urg_pairs) / len(urg_pairs) if urg_pairs else 0.0,
        "urgency": _prf(urg_pairs, ["emergency", "important", "general"]),
        "emotion": _prf(emo_pairs, ["angry", "calm"]),
        "location_exact": loc_ok / loc_n if loc_n else 0.0,
        "phone_exact": phone_ok / phone_n if phone_n else 0.0,
        "errors": errors,
    }


def _print_report(rep: dict[str, Any], out: io.TextIOBase | Any) -> None:
    def table(title: str, rows: dict[str, tuple[float, float, float, int]]) -> None:
        print(f"\n{title}", file=out)
        print(f"  {'类别':<16}{'精确率':>8}{'召回率':>8}{'F1':>8}{'样本':>6}", file=out)
        for lab, (p, r, f, s) in rows.items():
            print(f"  {lab:<18}{p:>9.3f}{r:>9.3f}{f:>9.3f}{s:>7}", file=out)

    print(f"样本数: {rep['n']}", file=out)
    print(f"类别准确率: {rep['category_accuracy']:.3f}", file=out)
    print(f"紧急程度准确率: {rep['urgency_accuracy']:.3f}", file=out)
    print(f"地点完全匹配率: {rep['location_exact']:.3f}", file=out)
    print(f"电话完全匹配率: {rep['phone_exact']:.3f}", file=out)
    table("类别", rep["category"])
    table("紧急程度", rep["urgency"])
    table("情绪", rep["emotion"])
    cats = rep["categories"]
    print("\n混淆矩阵（行 = 标注，列 = 预测）", file=out)
    short = [c[:8] for c in cats]
    print("  " + " " * 16 + "".join(f"{s:>10}" for s in short), file=out)
    for g in cats:
        print(f"  {g:<16}" + "".join(f"{rep['confusion'][g][p]:>10}" for p in cats), file=out)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} 第 {n} 行不是有效的 JSON: {exc}") from None
            if (
                not isinstance(rec, dict)
                or not isinstance(rec.get("text"), str)
                or not isinstance(rec.get("category"), str)
            ):
                raise ValueError(f"{path} 第 {n} 行缺少 text 或 category 字段")
            records.append(rec)
    return records


def _learn(args: argparse.Namespace) -> int:
    from intents.learned import dump, learn

    try:
        clf = Classifier.load(args.rules, with_learned=False)
        records = [rec for f in args.learn for rec in _read_jsonl(Path(f))]
    except (RulesError, ValueError, OSError) as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return 1
    if args.out:
        out = Path(args.out)
    elif clf.rules.learned is not None:
        out = clf.rules.learned.file
    else:
        print("错误: 规则文件没有 [learned] file，请用 --out 指定输出文件", file=sys.stderr)
        return 1
    unknown = sorted({r["category"] for r in records} - set(clf.categories))
    if unknown:
        print(f"错误: 标注里有规则文件没有定义的类别: {', '.join(unknown)}", file=sys.stderr)
        return 1
    learned = learn(records, clf.categories, clf.tokenize, sources=[Path(f).name for f in args.learn])
    try:
        dump(learned, out)
    except OSError as exc:
        print(f"错误: 无法写入 {out}: {exc}", file=sys.stderr)
        return 1
    print(f"已从 {len(records)} 条标注学习 {len(learned.table)} 个词的权重，写入 {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"用法错误: {exc}", file=sys.stderr)
        _parser().print_usage(sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    if args.learn:
        return _learn(args)
    try:
        records = _read_jsonl(Path(args.evaluate)) if args.evaluate else None
        clf = Classifier.load(args.rules)
    except (RulesError, ValueError, OSError) as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return 1
    if records is not None:
        if hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(encoding="utf-8")
        with contextlib.suppress(BrokenPipeError):
            _print_report(evaluate(clf, records), sys.stdout)
        return 0
    # Decode stdin ourselves: the locale may not be UTF-8 and a bad byte must not kill the batch.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline=None)
    out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n", line_buffering=False)
    try:
        for line in stdin:
            text = line.rstrip("\r\n")
            obj = clf.explain(text) if args.explain else clf.classify(text).to_dict()
            out.write(json.dumps(obj, ensure_ascii=False) + "\n")
            out.flush()
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
