"""Loading and validating the administrator-editable rules file (``intents/rules.toml``).

The file is TOML so that an administrator can edit it with any text editor; everything is
validated up front and every problem is reported as ``RulesError`` naming the file and line,
so a typo fails at start-up instead of silently mis-routing complaints later.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from re import _constants as _sre_c  # type: ignore[attr-defined]
from re import _parser as _sre_p  # type: ignore[attr-defined]
from typing import Any

URGENCY_LEVELS: tuple[str, ...] = ("general", "important", "emergency")
EMOTIONS: tuple[str, ...] = ("calm", "angry")
DEFAULT_RULES_PATH = Path(__file__).with_name("rules.toml")
RULES_ENV_VAR = "WUYE_RULES_FILE"
_CATEGORY_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class RulesError(Exception):
    """The rules file is missing or invalid; the message names the file and the line."""


@dataclass(frozen=True)
class CategoryRule:
    name: str
    label: str
    keywords: dict[str, float]
    min_urgency: str = "general"


@dataclass(frozen=True)
class ContextRule:
    name: str
    all_of: tuple[re.Pattern[str], ...]
    none_of: tuple[re.Pattern[str], ...]
    boost: dict[str, float]
    scale: dict[str, float]
    urgency_cap: str | None = None
    # Keywords that a rule's text cancels (e.g. "电梯" when the text is about cleaning the elevator).
    drop: frozenset[str] = frozenset()
    # Off while an emergency is happening: a staff failure during one ("困人了 电话没人接") is
    # routed with the emergency to the team that fixes it (SPEC), the failure a secondary category.
    not_in_emergency: bool = False


@dataclass(frozen=True)
class UrgencyRule:
    level: str
    name: str
    pattern: re.Pattern[str]
    unless: re.Pattern[str] | None
    # A cue saying the problem is still there now ("到现在还没修"): in its clause the rule's
    # ``unless`` cues (past, resolved) no longer cancel the match.
    despite: re.Pattern[str] | None = None
    # Categories this hazard belongs to ("人走失" → security): added to their scores when it fires,
    # so a short "孩子不见了" still reaches the right team.
    boost: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class EmotionCue:
    name: str
    weight: float
    pattern: re.Pattern[str]
    # Urgency levels in which the cue says nothing about temper: "!!!" in "着火了!!!" is panic.
    not_in_urgency: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rules:
    path: Path
    categories: dict[str, CategoryRule]
    fallback: str
    ask_below: float
    min_score: float
    secondary_ratio: float
    secondary_min: float
    negators: frozenset[str]
    userdict: tuple[str, ...]
    contexts: tuple[ContextRule, ...]
    urgency: tuple[UrgencyRule, ...]
    angry_threshold: float
    emotion: tuple[EmotionCue, ...]
    areas: tuple[str, ...]
    not_areas: tuple[str, ...] = field(default_factory=tuple)
    # Other ways of writing an area → its name in ``areas`` ("小区门口" → "小区大门").
    area_aliases: dict[str, str] = field(default_factory=dict)
    # Pinyin, English and Cantonese spellings → the Chinese the rules are written in (matching only).
    translate: dict[str, str] = field(default_factory=dict)
    learned: LearnedSettings | None = None
    # Added to the category a rule word names first, when the text names several: residents
    # usually start with what they want handled ("楼道灯坏了, 垃圾也没人清" is a repair first).
    first_mention_bonus: float = 0.0
    # Anywhere in the text, these say the danger is over or was never there ("虚惊一场",
    # "不用来了"): no emergency, whatever clause the hazard words stand in.
    emergency_void: re.Pattern[str] | None = None


@dataclass(frozen=True)
class LearnedSettings:
    """``[learned]``: how much the word weights learned from labelled complaints count."""

    file: Path
    category_weight: float
    # Learned emergency / anger evidence above which a text counts even when no rule fired;
    # None: the learned weights never decide that on their own.
    emergency_above: float | None
    angry_above: float | None
    # Learned emergency evidence counts only for these categories (empty: all).
    emergency_categories: frozenset[str] = frozenset()


def _class_chars(av: Any) -> set[str] | None:
    """The characters of a parsed ``[…]`` class; None for negated sets, ``\\d``, ``\\w`` and wide ranges."""
    out: set[str] = set()
    for o, a in av:
        if o is _sre_c.LITERAL:
            out.add(chr(a))
        elif o is _sre_c.RANGE and a[1] - a[0] < 256:
            out.update(chr(x) for x in range(a[0], a[1] + 1))
        else:
            return None
    return out


def _first_chars(items: Any) -> tuple[set[str] | None, bool]:
    """Characters a parsed regex sequence can start with (None: any) and whether it can be empty."""
    out: set[str] = set()
    for op, av in items:
        if op is _sre_c.LITERAL:
            out.add(chr(av))
            return out, False
        if op in (_sre_c.AT, _sre_c.ASSERT, _sre_c.ASSERT_NOT):
            continue  # zero width: the next item decides
        if op is _sre_c.IN:
            chars = _class_chars(av)
            return (None, False) if chars is None else (out | chars, False)
        if op is _sre_c.SUBPATTERN:
            if av[1] or av[2]:  # inline flags such as (?i:…)
                return None, False
            chars, nullable = _first_chars(av[3])
        elif op is _sre_c.BRANCH:
            chars, nullable = set(), False
            for alt in av[1]:
                a, a_null = _first_chars(alt)
                if a is None:
                    return None, False
                chars |= a
                nullable = nullable or a_null
        elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT):
            chars, nullable = _first_chars(av[2])
            nullable = nullable or av[0] == 0
        else:
            return None, False
        if chars is None:
            return None, False
        out |= chars
        if not nullable:
            return out, False
    return out, True


def needed_pieces(pattern: re.Pattern[str], rarity: Callable[[str], float]) -> frozenset[str] | None:
    """Characters or character pairs one of which every match of ``pattern`` contains.

    None: no such guarantee. A text holding none of them cannot match, so the classifier skips
    the search. Where several parts of a sequence qualify, the set that is rarest (lowest total
    ``rarity``) is chosen: "(电梯|梯子?)关人" needs 关 or 人 or the pair 关人, and the pair rules
    out the most texts.
    """
    if pattern.flags & re.IGNORECASE:
        return None
    tree = _TREES.pop(pattern.pattern, None)  # handed over once: nothing else needs it
    if tree is None:
        try:
            tree = _sre_p.parse(pattern.pattern)
        except Exception:  # a private parser: never let it break loading
            return None

    def cost(pieces: frozenset[str]) -> float:
        return sum(rarity(p) for p in pieces)

    def sequence(items: Any) -> frozenset[str] | None:
        items = list(items)
        best: frozenset[str] | None = None
        for i, (op, av) in enumerate(items):
            found = [item(op, av)]
            if op is _sre_c.LITERAL and i + 1 < len(items) and items[i + 1][0] is _sre_c.LITERAL:
                found.append(frozenset([chr(av) + chr(items[i + 1][1])]))  # two literals in a row
            for pieces in found:
                if pieces is not None and (best is None or cost(pieces) < cost(best)):
                    best = pieces
        return best

    def item(op: Any, av: Any) -> frozenset[str] | None:
        if op is _sre_c.LITERAL:
            return frozenset(chr(av))
        if op is _sre_c.IN:
            chars = _class_chars(av)
            return None if chars is None else frozenset(chars)
        if op is _sre_c.SUBPATTERN:
            return None if av[1] or av[2] else sequence(av[3])
        if op is _sre_c.BRANCH:
            union: set[str] = set()
            for alt in av[1]:
                pieces = sequence(alt)
                if pieces is None:
                    return None
                union |= pieces
            return frozenset(union)
        if op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT):
            return sequence(av[2]) if av[0] > 0 else None
        return None  # ., look-arounds, anchors, back-references: no character guaranteed

    return sequence(tree) or None


# Parsed trees of the rules' own regexes, by the source of the pattern compile_fast made from
# each: ``needed_pieces`` takes them instead of parsing the same long regex once more (parsing is
# most of the rules' start-up time). Taken, not kept: the shipped rules' trees are 3.5 MiB that the
# bot would otherwise hold for nothing; a second classifier on the same rules parses again.
_TREES: dict[str, Any] = {}
_GLOBAL_FLAGS = re.IGNORECASE | re.MULTILINE | re.DOTALL | re.VERBOSE | re.ASCII


def compile_fast(src: str) -> re.Pattern[str]:
    """``re.compile(src)``, guarded by a look-ahead for the characters a match can start with.

    The rules are long alternations (困人|被困|…) that Python's engine tries one by one at every
    position; the look-ahead skips the positions where no alternative can begin, which makes the
    search several times faster and never changes what matches.
    """
    tree = _sre_p.parse(src)  # raises re.error as re.compile would
    if tree.state.flags & _GLOBAL_FLAGS:
        return re.compile(src)  # (?i)… must stay at the start: no guard
    chars, nullable = _first_chars(tree)
    if chars is None or nullable or not chars:
        pat = re.compile(src)
    else:
        cls = "".join(sorted("\\" + c if c in "\\]^-[" else c for c in chars))
        pat = re.compile(f"(?=[{cls}])(?:{src})")
    _TREES[pat.pattern] = tree
    return pat


def default_rules_path() -> Path:
    env = os.environ.get(RULES_ENV_VAR)
    return Path(env) if env else DEFAULT_RULES_PATH


class _Locator:
    """Finds the line of a table/key/value in the raw text; tomllib keeps no positions."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, *needles: str, start: int = 1) -> int:
        # The last needle is the most specific; earlier ones narrow the search (table header, key).
        line = start
        for needle in needles:
            for i in range(line - 1, len(self.lines)):
                # A comment may mention a key ("category_weight 设为 0 即不用"): not its line.
                if needle in self.lines[i] and not self.lines[i].lstrip().startswith("#"):
                    line = i + 1
                    break
        return line

    def error(self, line: int, message: str) -> RulesError:
        return RulesError(f"规则文件 {self.path} 第 {line} 行: {message}")


def _toml_str(value: str) -> str:
    """How a parsed basic string is written in the file (backslashes doubled), to find its line."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _header(table: str) -> str:
    return f"[{table}]"


def _learned_path(rules_path: Path, file: str) -> Path:
    """A relative name is looked up beside the rules file, then beside the shipped rules (a copied
    rules file keeps using the shipped learned weights until its owner learns their own)."""
    p = Path(file)
    if p.is_absolute():
        return p
    beside = rules_path.parent / p
    if beside.exists():
        return beside
    shipped = DEFAULT_RULES_PATH.parent / p
    return shipped if shipped.exists() else beside


def load_rules(path: str | Path | None = None) -> Rules:
    p = Path(path) if path is not None else default_rules_path()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(f"规则文件 {p} 不存在") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"规则文件 {p} 无法读取: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        line = m.group(1) if m else "?"
        raise RulesError(f"规则文件 {p} 第 {line} 行: TOML 语法错误 ({exc})") from None
    return _parse(p, text, data)


def _parse(path: Path, text: str, data: dict[str, Any]) -> Rules:
    loc = _Locator(path, text)

    def need_table(obj: Any, name: str, line: int) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise loc.error(line, f"{name} 必须是表 (table)")
        return obj

    def number(obj: Any, what: str, line: int, lo: float | None = None, hi: float | None = None) -> float:
        if isinstance(obj, bool) or not isinstance(obj, int | float):
            raise loc.error(line, f"{what} 必须是数字, 实际是 {obj!r}")
        v = float(obj)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise loc.error(line, f"{what} 超出范围 [{lo}, {hi}]: {v}")
        return v

    def str_list(obj: Any, what: str, line: int) -> list[str]:
        if not isinstance(obj, list) or not all(isinstance(x, str) for x in obj):
            raise loc.error(line, f"{what} 必须是字符串列表")
        return list(obj)

    def regex(src: str, what: str, line: int) -> re.Pattern[str]:
        try:
            return compile_fast(src)
        except re.error as exc:
            raise loc.error(line, f"{what} 正则表达式无效 {src!r}: {exc}") from None

    def alternation(parts: list[str], what: str, line: int, start: int | None = None) -> re.Pattern[str]:
        """The parts as one regex. Only if that fails are the parts compiled one by one, so the
        error names the bad part's own line (found from ``start``) without compiling every part
        twice on every start-up."""
        joined = "|".join(f"(?:{p})" for p in parts)
        try:
            return compile_fast(joined)
        except re.error:
            if start is not None:
                for p in parts:
                    regex(p, what, loc.line_of(_toml_str(p), start=start))
            return regex(joined, what, line)  # each part alone is valid: name the block

    def any_of(obj: Any, what: str, line: int) -> re.Pattern[str] | None:
        """An optional list of regexes as one alternation (None when the list is empty)."""
        src = str_list(obj, what, line)
        return alternation(src, what, line) if src else None

    def category_numbers(obj: Any, what: str, line: int, rule: str) -> dict[str, float]:
        """``{ category = number }`` (boost, scale): every key must be a defined category."""
        out: dict[str, float] = {}
        for cat, val in need_table(obj, what, line).items():
            if cat not in categories:
                raise loc.error(line, f"{rule} 的 {what.rsplit('.', 1)[-1]} 用了未定义的类别 {cat!r}")
            out[cat] = number(val, f"{what}.{cat}", line, 0)
        return out

    settings = need_table(data.get("settings", {}), "settings", loc.line_of("[settings]"))
    s_line = loc.line_of("[settings]")
    ask_below = number(
        settings.get("ask_below", 0.5), "settings.ask_below", loc.line_of("[settings]", "ask_below"), 0, 1
    )
    min_score = number(
        settings.get("min_score", 1.0), "settings.min_score", loc.line_of("[settings]", "min_score"), 0
    )
    sec_ratio = number(
        settings.get("secondary_ratio", 0.5),
        "settings.secondary_ratio",
        loc.line_of("[settings]", "secondary_ratio"),
        0,
        1,
    )
    sec_min = number(
        settings.get("secondary_min", 2.0),
        "settings.secondary_min",
        loc.line_of("[settings]", "secondary_min"),
        0,
    )
    first_bonus = number(
        settings.get("first_mention_bonus", 0.0),
        "settings.first_mention_bonus",
        loc.line_of("[settings]", "first_mention_bonus"),
        0,
    )
    negators = str_list(
        settings.get("negators", []), "settings.negators", loc.line_of("[settings]", "negators")
    )
    emergency_void = any_of(
        settings.get("emergency_void", []),
        "settings.emergency_void",
        loc.line_of("[settings]", "emergency_void"),
    )
    fallback = settings.get("fallback", "other")
    if not isinstance(fallback, str):
        raise loc.error(s_line, "settings.fallback 必须是类别名")

    # --- categories ---------------------------------------------------------------------------
    cats_raw = data.get("categories")
    if not isinstance(cats_raw, dict) or not cats_raw:
        raise loc.error(loc.line_of("[categories"), "至少需要一个 [categories.<名称>] 类别")
    categories: dict[str, CategoryRule] = {}
    for name, body in cats_raw.items():
        hdr = _header(f"categories.{name}")
        line = loc.line_of(hdr)
        if not _CATEGORY_ID.match(name):
            raise loc.error(line, f"类别名 {name!r} 只能用小写英文字母、数字和下划线")
        body = need_table(body, f"categories.{name}", line)
        label = body.get("label")
        if not isinstance(label, str) or not label.strip():
            lline = loc.line_of(hdr, "label") if "label" in body else line
            raise loc.error(lline, f"类别 {name} 缺少中文名称 label")
        min_urg = body.get("min_urgency", "general")
        if min_urg not in URGENCY_LEVELS:
            raise loc.error(
                loc.line_of(hdr, "min_urgency"), f"min_urgency 必须是 {'/'.join(URGENCY_LEVELS)} 之一"
            )
        kw_line = loc.line_of(hdr, "keywords")
        entries = str_list(body.get("keywords", []), f"categories.{name}.keywords", kw_line)
        keywords: dict[str, float] = {}
        for entry in entries:
            eline = loc.line_of(hdr, f'"{entry}"')
            word, sep, weight_s = entry.partition(":")
            word = word.strip().lower()
            if not word:
                raise loc.error(eline, f"关键词 {entry!r} 为空")
            weight = 2.0
            if sep:
                try:
                    weight = float(weight_s)
                except ValueError:
                    raise loc.error(eline, f'关键词 {entry!r} 的权重不是数字 (格式: "词:权重")') from None
            if not 0 < weight <= 10:
                raise loc.error(eline, f"关键词 {entry!r} 的权重必须在 (0, 10] 之间")
            keywords[word] = weight
        categories[name] = CategoryRule(name, label.strip(), keywords, min_urg)
    if fallback not in categories:
        raise loc.error(s_line, f"settings.fallback 类别 {fallback!r} 没有定义")

    # --- jieba user dictionary ----------------------------------------------------------------
    ud = need_table(data.get("userdict", {}), "userdict", loc.line_of("[userdict]"))
    userdict = str_list(ud.get("words", []), "userdict.words", loc.line_of("[userdict]", "words"))

    # --- context rules ------------------------------------------------------------------------
    contexts: list[ContextRule] = []
    ctx_raw = data.get("context", [])
    if not isinstance(ctx_raw, list):
        raise loc.error(loc.line_of("context"), "context 必须写成 [[context]] 表数组")
    ctx_line = 1
    for i, ctx in enumerate(ctx_raw):
        ctx_line = loc.line_of("[[context]]", start=ctx_line + (1 if i else 0))
        ctx = need_table(ctx, "context", ctx_line)
        cname = ctx.get("name", f"context#{i + 1}")
        all_src = str_list(ctx.get("all", []), "context.all", ctx_line)
        if not all_src:
            raise loc.error(ctx_line, f"上下文规则 {cname} 需要 all = [正则, ...]")
        all_of = tuple(regex(s, "context.all", loc.line_of(_toml_str(s), start=ctx_line)) for s in all_src)
        none_of = tuple(
            regex(s, "context.none", loc.line_of(_toml_str(s), start=ctx_line))
            for s in str_list(ctx.get("none", []), "context.none", ctx_line)
        )
        boost, scale = (
            category_numbers(
                ctx.get(key, {}), f"context.{key}", loc.line_of(key, start=ctx_line), f"上下文规则 {cname}"
            )
            for key in ("boost", "scale")
        )
        cap = ctx.get("urgency_cap")
        if cap is not None and cap not in URGENCY_LEVELS:
            raise loc.error(
                loc.line_of("urgency_cap", start=ctx_line),
                f"urgency_cap 必须是 {'/'.join(URGENCY_LEVELS)} 之一",
            )
        drop = frozenset(w.lower() for w in str_list(ctx.get("drop", []), "context.drop", ctx_line))
        off_in_emergency = ctx.get("not_in_emergency", False)
        if not isinstance(off_in_emergency, bool):
            raise loc.error(loc.line_of("not_in_emergency", start=ctx_line), "not_in_emergency 必须是 true 或 false")
        contexts.append(ContextRule(str(cname), all_of, none_of, boost, scale, cap, drop, off_in_emergency))

    # --- urgency ------------------------------------------------------------------------------
    urgency: list[UrgencyRule] = []
    u_line = 1
    urg_raw = data.get("urgency", [])
    if not isinstance(urg_raw, list):
        raise loc.error(loc.line_of("urgency"), "urgency 必须写成 [[urgency]] 表数组")
    for i, u in enumerate(urg_raw):
        u_line = loc.line_of("[[urgency]]", start=u_line + (1 if i else 0))
        u = need_table(u, "urgency", u_line)
        level = u.get("level")
        if level not in URGENCY_LEVELS[1:]:
            raise loc.error(loc.line_of("level", start=u_line), "urgency.level 必须是 important 或 emergency")
        pats = str_list(u.get("patterns", []), "urgency.patterns", u_line)
        if not pats:
            raise loc.error(u_line, "urgency 规则需要 patterns")
        pat = alternation(pats, "urgency.patterns", u_line, start=u_line)
        unless = any_of(u.get("unless", []), "urgency.unless", loc.line_of("unless", start=u_line))
        despite = any_of(u.get("despite", []), "urgency.despite", loc.line_of("despite", start=u_line))
        u_boost = category_numbers(
            u.get("boost", {}),
            "urgency.boost",
            loc.line_of("boost", start=u_line),
            f"紧急程度规则 {u.get('name', level)}",
        )
        urgency.append(UrgencyRule(level, str(u.get("name", level)), pat, unless, despite, u_boost))

    # --- emotion ------------------------------------------------------------------------------
    emo = need_table(data.get("emotion", {}), "emotion", loc.line_of("[emotion]"))
    threshold = number(
        emo.get("angry_threshold", 2),
        "emotion.angry_threshold",
        loc.line_of("[emotion]", "angry_threshold"),
        0,
    )
    cues: list[EmotionCue] = []
    e_line = loc.line_of("[emotion]")
    cues_raw = emo.get("cues", [])
    if not isinstance(cues_raw, list):
        raise loc.error(e_line, "emotion.cues 必须写成 [[emotion.cues]] 表数组")
    for i, c in enumerate(cues_raw):
        e_line = loc.line_of("[[emotion.cues]]", start=e_line + (1 if i else 0))
        c = need_table(c, "emotion.cues", e_line)
        w = number(c.get("weight", 1), "emotion.cues.weight", loc.line_of("weight", start=e_line), -10, 10)
        pats = str_list(c.get("patterns", []), "emotion.cues.patterns", e_line)
        if not pats:
            raise loc.error(e_line, "emotion.cues 需要 patterns")
        pat = alternation(pats, "emotion.cues.patterns", e_line, start=e_line)
        skip = str_list(c.get("not_in_urgency", []), "emotion.cues.not_in_urgency", e_line)
        for lvl in skip:
            if lvl not in URGENCY_LEVELS:
                raise loc.error(
                    loc.line_of("not_in_urgency", start=e_line),
                    f"emotion.cues.not_in_urgency 的取值必须是 {', '.join(URGENCY_LEVELS)} 之一: {lvl!r}",
                )
        cues.append(EmotionCue(str(c.get("name", f"cue#{i + 1}")), w, pat, frozenset(skip)))

    # --- location -----------------------------------------------------------------------------
    lt = need_table(data.get("location", {}), "location", loc.line_of("[location]"))
    areas = str_list(lt.get("areas", []), "location.areas", loc.line_of("[location]", "areas"))
    not_areas = str_list(
        lt.get("not_areas", []), "location.not_areas", loc.line_of("[location]", "not_areas")
    )

    al_line = loc.line_of("[location]", "aliases")
    aliases_raw = need_table(lt.get("aliases", {}), "location.aliases", al_line)
    area_aliases: dict[str, str] = {}
    for written, canonical in aliases_raw.items():
        if not isinstance(canonical, str) or canonical not in areas:
            raise loc.error(al_line, f"location.aliases 的 {written!r} 必须指向 areas 里的一个区域名")
        area_aliases[written] = canonical

    # --- translate ----------------------------------------------------------------------------
    tr_line = loc.line_of("[translate]")
    tr = need_table(data.get("translate", {}), "translate", tr_line)
    translate: dict[str, str] = {}
    for section, table in tr.items():
        table = need_table(table, f"translate.{section}", loc.line_of(f"[translate.{section}]"))
        for written, chinese in table.items():
            if not isinstance(chinese, str) or not chinese.strip() or not written.strip():
                raise loc.error(
                    loc.line_of(f"[translate.{section}]", f'"{written}"'),
                    f"translate.{section} 的 {written!r} 必须对应一个非空的中文写法",
                )
            translate[" ".join(written.lower().split())] = chinese.strip()

    # --- learned word weights ----------------------------------------------------------------
    learned: LearnedSettings | None = None
    if "learned" in data:
        l_line = loc.line_of("[learned]")
        lt = need_table(data["learned"], "learned", l_line)
        for key in lt:
            if key not in (
                "file",
                "category_weight",
                "emergency_above",
                "angry_above",
                "emergency_categories",
            ):
                raise loc.error(loc.line_of("[learned]", key), f"learned 中未知的配置项 {key!r}")
        file = lt.get("file", "")
        if not isinstance(file, str):
            raise loc.error(loc.line_of("[learned]", "file"), "learned.file 必须是文件名字符串")
        if file:

            def optional(key: str) -> float | None:
                if key not in lt:
                    return None
                return number(lt[key], f"learned.{key}", loc.line_of("[learned]", key), -100, 100)

            learned = LearnedSettings(
                file=_learned_path(path, file),
                category_weight=number(
                    lt.get("category_weight", 0.3),
                    "learned.category_weight",
                    loc.line_of("[learned]", "category_weight"),
                    0,
                    5,
                ),
                emergency_above=optional("emergency_above"),
                angry_above=optional("angry_above"),
                emergency_categories=frozenset(
                    str_list(
                        lt.get("emergency_categories", []),
                        "learned.emergency_categories",
                        loc.line_of("[learned]", "emergency_categories"),
                    )
                ),
            )
            unknown = learned.emergency_categories - set(categories)
            if unknown:
                raise loc.error(
                    loc.line_of("[learned]", "emergency_categories"),
                    f"learned.emergency_categories 用了未定义的类别 {sorted(unknown)!r}",
                )

    known_top = {
        "learned",
        "settings",
        "categories",
        "userdict",
        "context",
        "urgency",
        "emotion",
        "location",
        "translate",
        "schema",
    }
    for key in data:
        if key not in known_top:
            raise loc.error(loc.line_of(key), f"未知的配置项 {key!r}")

    return Rules(
        path=path,
        categories=categories,
        fallback=fallback,
        ask_below=ask_below,
        min_score=min_score,
        secondary_ratio=sec_ratio,
        secondary_min=sec_min,
        negators=frozenset(negators),
        userdict=tuple(userdict),
        contexts=tuple(contexts),
        urgency=tuple(urgency),
        angry_threshold=threshold,
        emotion=tuple(cues),
        # Longest first so 中心花园 wins over 花园 and 地下车库 over 车库.
        areas=tuple(sorted(set(areas) | set(area_aliases), key=len, reverse=True)),
        not_areas=tuple(not_areas),
        area_aliases=area_aliases,
        translate=translate,
        learned=learned,
        emergency_void=emergency_void,
        first_mention_bonus=first_bonus,
    )
