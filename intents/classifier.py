"""Complaint text → category, urgency, emotion, location and phone.

How it reads a text (all words and weights live in ``rules.toml``, not here):

1. Normalise: HTML tags dropped, NFKC (full-width ``！１２Ａ`` → ``!12A``), lower case for matching.
2. Segment with jieba (own ``Tokenizer`` carrying the rules' user dictionary and every keyword,
   so domain words such as 电梯困人 or 消防通道 stay whole). Keywords match whole tokens or runs of
   up to ``_MAX_NGRAM`` tokens, longest first, so 水电费 never counts as 电费 and a negator token
   right before a keyword (不 漏水) cancels it.
3. Context rules (regular expressions) add to or scale the category scores — this is how
   "报修电话没人接" becomes staff_attitude and "谢谢你们修好了水管" becomes other.
4. Urgency: the highest level whose pattern matches a clause without that rule's ``unless`` cue
   in the same clause, never below the category's ``min_urgency``; context rules may cap it.
5. Emotion: weighted cues (insults, 忍无可忍, exclamation storms, threats of 12345/media/court).

Location normalisation (``Location``):

* ``building``, ``unit`` and ``room`` are plain strings of arabic digits, or upper-case letters
  with optional digits: ``十二号楼`` → building ``"12"``; ``5栋3单元801`` → ``"5"``, ``"3"``, ``"801"``;
  ``5-3-801`` → the same; ``A座`` → ``"A"``. A bare ``18楼`` is a floor, not a building, and is ignored
  unless a unit follows (``3楼2单元`` → building ``"3"``).
* ``area`` is a public area from the rules' ``[location].areas`` list, as written (longest match,
  first in the text): ``南门``, ``地库``, ``中心花园``. Basement garages are written ``B<n>车库``
  (``b2车库``, ``负二层车库`` → ``"B2车库"``).
* No building, unit, room or area → ``location`` is ``None``.

Phones: a mainland mobile is 11 digits (``+86``, spaces and dashes removed); a landline with its
area code is ``"0571-88776655"``.
"""

from __future__ import annotations

import html
import logging
import marshal
import os
import re
import sys
import tempfile
import threading
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from intents.learned import Learned, LearnedError, features, load_learned
from intents.rules import URGENCY_LEVELS, Rules, RulesError, load_rules, needed_pieces
from intents.segment import Segmenter

__all__ = ["Classification", "Classifier", "Location", "RulesError", "load_classifier_async"]

_MAX_NGRAM = 4
# The most a reading may claim when it is a guess (nothing scored enough, or only the learned word
# counts spoke): below any sensible ``ask_below``, so the dialog asks the resident to pick.
_GUESS_CONFIDENCE = 0.3
# Beyond this many characters a complaint is an essay; reading more cannot change the decision
# and would only cost time (the CLI must survive a 10,000-character line).
_MAX_CHARS = 2000


@dataclass(frozen=True)
class Location:
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    area: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"building": self.building, "unit": self.unit, "room": self.room, "area": self.area}


@dataclass(frozen=True)
class Classification:
    category: str
    secondary: list[str]
    urgency: str
    emotion: str
    location: Location | None
    phone: str | None
    keywords: list[str]
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "secondary": list(self.secondary),
            "urgency": self.urgency,
            "emotion": self.emotion,
            "location": self.location.to_dict() if self.location else None,
            "phone": self.phone,
            "keywords": list(self.keywords),
            "confidence": self.confidence,
        }


# --------------------------------------------------------------------------------------------
# jieba: the main dictionary is loaded once per process and copied into each classifier's own
# Tokenizer, so custom rules files (tests, admins) never pay the ~0.5 s load again and never
# change the global jieba state other code may rely on.
# --------------------------------------------------------------------------------------------
_base_lock = threading.Lock()
_base_dict: tuple[dict[str, int], int] | None = None


def _import_jieba() -> Any:
    if "jieba" not in sys.modules:
        # jieba 0.42 imports pkg_resources only to locate its own data files, which costs ~0.1 s
        # and, with setuptools >= 67, emits a DeprecationWarning. Without it jieba falls back to
        # plain open() next to its module file — same files, no warning.
        blocked = "pkg_resources" not in sys.modules
        if blocked:
            sys.modules["pkg_resources"] = None  # type: ignore[assignment]
        try:
            import jieba
        finally:
            if blocked and sys.modules.get("pkg_resources", 0) is None:
                del sys.modules["pkg_resources"]
    import jieba

    # jieba logs "Building prefix dict…" at DEBUG on stderr; that is noise in a CLI's output.
    jieba.setLogLevel(logging.WARNING)
    return jieba


def _load_base_dict(jieba: Any) -> tuple[dict[str, int], int]:
    """jieba's main dictionary: from jieba's own cache file when it has written one.

    jieba reads that file with ``marshal.load`` on the open file, which reads it in thousands of
    small pieces: 0.8–0.95 s here. Reading the whole file first and ``marshal.loads`` gives the
    same dictionary in 0.3 s — the largest part of the CLI's cold start. Without a usable cache
    jieba builds the dictionary (and writes the cache) as usual.
    """
    base = jieba.Tokenizer()
    if base.dictionary == jieba.DEFAULT_DICT and not base.cache_file:
        cache = os.path.join(base.tmp_dir or tempfile.gettempdir(), "jieba.cache")  # jieba's name
        try:
            with open(cache, "rb") as f:
                freq, total = marshal.loads(f.read())
            if isinstance(freq, dict) and isinstance(total, int) and freq:
                return freq, total
        except (OSError, ValueError, EOFError, TypeError):
            pass  # missing or unreadable: let jieba build it
    base.initialize()
    return base.FREQ, base.total


def _new_tokenizer() -> Any:
    global _base_dict
    jieba = _import_jieba()
    with _base_lock:
        if _base_dict is None:
            _base_dict = _load_base_dict(jieba)
    freq, total = _base_dict
    tk = jieba.Tokenizer()
    tk.FREQ = dict(freq)
    tk.total = total
    tk.initialized = True
    return tk


# --------------------------------------------------------------------------------------------
# Location and phone
# --------------------------------------------------------------------------------------------
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_NUM = r"(?:\d{1,3}|[零〇一二两三四五六七八九十百]{1,4}|[A-Za-z]\d{0,2})"
_UNIT = rf"(?P<u>{_NUM})\s*单元"
_LOC_RE = re.compile(
    rf"(?<![\dA-Za-z])(?P<b>{_NUM})\s*"
    rf"(?P<bs>号楼|号栋|栋|幢|座|(?:号|楼)(?=\s*{_NUM}\s*单元)|号(?=\d{{3,4}}(?![\d年月日号楼栋])))"
    rf"(?:[\s的,、-]*{_UNIT})?"
    r"(?:[\s的,、-]*(?:顶楼)?(?P<r>\d{3,4})(?![\d年月日号楼栋])(?:室|房|号)?)?"
)
_DASH_RE = re.compile(r"(?<![\d-])(\d{1,2})-(\d{1,2})-(\d{3,4})(?![\d-])")
# "7-2": building 7, unit 2 (residents shorten 7栋2单元 so); not "2-3天", "8-9点", "1-2个".
_DASH2_RE = re.compile(r"(?<![\d-])(\d{1,2})-([1-9])(?![\d-]|\s*[天个次点号月年日周分小岁元块%度倍楼层米])")
_UNIT_ONLY_RE = re.compile(
    rf"(?<![\dA-Za-z]){_UNIT}(?:[\s的,、-]*(?:顶楼)?(?P<r>\d{{3,4}})(?![\d年月日号楼栋]))?"
)
# A room alone: "1502室", or a flat number as residents say it ("我家1502", "我住2801",
# "1102的"; not "楼上1602", a neighbour's flat) — floor 1–99 and door 01–12, so years, sums and counts are not taken for rooms.
_ROOM = r"([1-9]\d?(?:0[1-9]|1[0-2]))"
_ROOM_ONLY_RES = (  # in this order: "401的请你们快上来，我是501" is 501
    re.compile(r"(?<![\d-])(\d{3,4})\s*(?:室|房间?号?)"),
    re.compile(rf"(?:我是|我住|我家|住在?|一楼)\s*{_ROOM}(?![\d.%元块年月日号楼栋])"),
    re.compile(rf"(?<![\d.:/-]){_ROOM}(?:的(?![\d钱费])|那家|那户)"),
)
_BASEMENT_RE = re.compile(r"(?:[Bb]|负|地下)\s*([1-4一二三四])\s*[层楼]?\s*(车库|停车场)")
# A basement floor named alone ("负2楼出口", "车位在负一层"), as written; only when no other area is
# named, since "负一楼配电房" is the 配电房.
_BASEMENT_FLOOR_RE = re.compile(r"负\s*[1-4一二三四]\s*[层楼]")
_MOBILE_RE = re.compile(r"(?<![\d])(?:\+?86[\s-]?)?(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)")
_LANDLINE_RE = re.compile(r"(?<![\d])\(?(0\d{2,3})\)?[\s-]?([2-9]\d{6,7})(?!\d)")


def cn_number(s: str) -> str:
    """'十二' → '12', '二十三' → '23', '3' → '3', 'a3' → 'A3'. Unknown forms are returned as is."""
    if s.isdigit():
        return str(int(s))
    if s[0].isascii():
        return s.upper()
    if all(c in _CN_DIGITS for c in s):  # 一零二 read digit by digit
        return "".join(str(_CN_DIGITS[c]) for c in s)
    total, cur = 0, 0
    for c in s:
        if c in _CN_DIGITS:
            cur = _CN_DIGITS[c]
        elif c == "十":
            total += (cur or 1) * 10
            cur = 0
        elif c == "百":
            total += (cur or 1) * 100
            cur = 0
        else:
            return s
    return str(total + cur)


_LOC_HINT_RE = re.compile(r"[楼栋幢座单元室房号]|\d-\d")
# English addresses: "building 6 unit 1", "Bldg 12, room 302".
_EN_LOC_RE = re.compile(
    r"\b(?:building|bldg|block)\.?\s*(?P<b>\d{1,3}|[a-z]\b)"
    r"(?:[\s,]*unit\s*(?P<u>\d{1,2}))?(?:[\s,]*(?:room|rm|apt)\.?\s*(?P<r>\d{3,4}))?",
    re.IGNORECASE,
)


def extract_location(
    text: str,
    areas: tuple[str, ...],
    not_areas: tuple[str, ...] = (),
    aliases: dict[str, str] | None = None,
) -> Location | None:
    loc = _extract_location(text, areas, not_areas)
    if loc is not None and aliases and loc.area in aliases:
        return Location(loc.building, loc.unit, loc.room, aliases[loc.area])
    return loc


def _extract_location(text: str, areas: tuple[str, ...], not_areas: tuple[str, ...]) -> Location | None:
    building = unit = room = area = None
    if _LOC_HINT_RE.search(text) is None:
        me = _EN_LOC_RE.search(text)
        if me:
            loc = _area_only(text, areas, not_areas)
            b = me.group("b")
            return Location(b.upper(), me.group("u"), me.group("r"), loc.area if loc else None)
        return _area_only(text, areas, not_areas)
    m = _DASH_RE.search(text)
    m2 = None if m else _DASH2_RE.search(text)
    if m:
        building, unit, room = m.group(1), m.group(2), m.group(3)
    elif m2 and _LOC_RE.search(text) is None:
        building, unit = m2.group(1), m2.group(2)
    else:
        for m in _LOC_RE.finditer(text):
            b, bs = m.group("b"), m.group("bs")
            # "一栋楼/两栋楼" counts buildings, it does not name one.
            if bs in ("栋", "幢") and not b[0].isdigit() and text[m.end("bs") : m.end("bs") + 1] == "楼":
                continue
            building = cn_number(b)
            unit = cn_number(m.group("u")) if m.group("u") else None
            room = m.group("r")
            break
        if building is None:
            mu = _UNIT_ONLY_RE.search(text)
            if mu:
                unit = cn_number(mu.group("u"))
                room = mu.group("r")
        if room is None:
            for rx in _ROOM_ONLY_RES:
                mr = rx.search(text)
                if mr:
                    room = mr.group(1)
                    break
    loc = _area_only(text, areas, not_areas)
    area = loc.area if loc else None
    if building is None and unit is None and room is None and area is None:
        return None
    return Location(building, unit, room, area)


_AREA_RE_CACHE: dict[tuple[tuple[str, ...], tuple[str, ...]], re.Pattern[str]] = {}


def _area_only(text: str, areas: tuple[str, ...], not_areas: tuple[str, ...]) -> Location | None:
    area = None
    mb = _BASEMENT_RE.search(text)
    if mb:
        area = f"B{cn_number(mb.group(1))}{mb.group(2)}"
    elif areas:
        key = (areas, not_areas)
        rx = _AREA_RE_CACHE.get(key)
        if rx is None:
            # not_areas first so "广场舞" is consumed before "广场" can match; areas longest first.
            alts = [re.escape(a) for a in (*sorted(not_areas, key=len, reverse=True), *areas)]
            rx = _AREA_RE_CACHE.setdefault(key, re.compile("|".join(alts)))
        skip = set(not_areas)
        for ma in rx.finditer(text):
            if ma.group(0) not in skip:
                area = ma.group(0)
                break
    if area is None and (mf := _BASEMENT_FLOOR_RE.search(text)):
        area = mf.group(0).replace(" ", "")
    return Location(area=area) if area else None


_CN_PHONE_DIGITS = str.maketrans("零〇一幺二两三四五六七八九", "0011223456789")
_CN_PHONE_RE = re.compile(r"[零〇一幺二两三四五六七八九]{11}")


def extract_phone(text: str) -> str | None:
    phone = _extract_phone(text)
    if phone is None:
        # A number spoken into a voice keyboard: "一三八零零一三八零零零".
        m = _CN_PHONE_RE.search(text)
        if m:
            phone = _extract_phone(m.group(0).translate(_CN_PHONE_DIGITS))
    return phone


def _extract_phone(text: str) -> str | None:
    m = _MOBILE_RE.search(text)
    ml = _LANDLINE_RE.search(text)
    if m and (not ml or m.start() <= ml.start()):
        return "".join(m.groups())
    if ml:
        return f"{ml.group(1)}-{ml.group(2)}"
    return None


# --------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------
_TAG_RE = re.compile(r"<[^>]{0,200}>")
_SPACE_RE = re.compile(r"\s+")
# Clause boundaries: punctuation, and spaces next to a Chinese character (residents often write
# "电梯坏了 快来人" with spaces instead of commas; spaces inside English text are not boundaries).
_CLAUSE_RE = re.compile(r"[,.;!?:。、;~…\n]+|(?<=[\u4e00-\u9fff])\s+|\s+(?=[\u4e00-\u9fff])")

# Traditional characters (residents from Hong Kong, Taiwan, Guangdong's older generation, or a phone
# set to 繁體) mapped to the simplified forms the rules are written in: every character of OpenCC's
# table, so a complaint typed in 繁體 reads like one typed in 简体. A str.translate table: the
# per-character cost does not depend on its size, and it loads in about a millisecond.
_TRAD_FILE = Path(__file__).with_name("traditional.txt")


def _load_traditional(path: Path) -> dict[int, str]:
    """``繁 简`` per line. A line an administrator got wrong is skipped with a warning naming it:
    reading 繁體 is a convenience, never a reason for the bot not to start."""
    table: dict[int, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        logging.getLogger(__name__).warning("繁简对照表 %s 无法读取，繁体字将不转换: %s", path, exc)
        return table
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        if len(parts) != 2 or len(parts[0]) != 1 or len(parts[1]) != 1:
            logging.getLogger(__name__).warning(
                "繁简对照表 %s 第 %d 行应为“繁 简”两个单字，已跳过: %r", path, n, line
            )
            continue
        table[ord(parts[0])] = parts[1]
    return table


_TRAD_MAP = _load_traditional(_TRAD_FILE)


def normalise(text: str) -> str:
    text = text[: _MAX_CHARS * 2]
    if "<" in text or "&" in text:
        text = _TAG_RE.sub(" ", html.unescape(text))
    text = unicodedata.normalize("NFKC", text).translate(_TRAD_MAP)
    return _SPACE_RE.sub(" ", text).strip()[:_MAX_CHARS]


_LATIN_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
_HAS_LATIN_RE = re.compile(r"[a-z]{2}")


class _Translator:
    """Rewrites pinyin, English and Cantonese words into the Chinese of the rules (``[translate]``).

    Latin words are matched whole, longest run of words first ("gas leak" before "gas"); a space
    between two rewritten words, or between a digit and a rewritten word, is dropped so "9 hao lou"
    reads 9号楼 and "lift broken" reads 电梯坏了 (one clause, as a Chinese writer would have it).
    Texts without latin letters or listed characters cost two C-level regex searches.
    """

    def __init__(self, table: dict[str, str]) -> None:
        self.latin: dict[tuple[str, ...], str] = {}
        cjk: dict[str, str] = {}
        for written, chinese in table.items():
            if written.isascii():
                self.latin[tuple(written.split())] = chinese
            else:
                cjk[written] = chinese
        self.max_words = max((len(k) for k in self.latin), default=0)
        self.cjk = cjk
        self.cjk_re = (
            re.compile("|".join(re.escape(w) for w in sorted(cjk, key=len, reverse=True))) if cjk else None
        )
        self.cjk_first = (
            re.compile("[" + re.escape("".join(sorted({w[0] for w in cjk}))) + "]") if cjk else None
        )

    def __call__(self, low: str) -> str:
        if self.cjk_first is not None and self.cjk_first.search(low):
            assert self.cjk_re is not None
            low = self.cjk_re.sub(lambda m: self.cjk[m.group(0)], low)
        if self.max_words and _HAS_LATIN_RE.search(low):
            low = self._latin(low)
        return low

    def _latin(self, low: str) -> str:
        words = list(_LATIN_RE.finditer(low))
        out: list[str] = []
        last = 0  # end of the text already copied
        prev_rewritten = False
        i = 0
        while i < len(words):
            found = None
            for k in range(min(self.max_words, len(words) - i), 0, -1):
                run = words[i : i + k]
                # Only words separated by plain spaces form a phrase ("gas, leak" does not).
                if any(low[a.end() : b.start()].strip() for a, b in zip(run, run[1:], strict=False)):
                    continue
                zh = self.latin.get(tuple(w.group(0) for w in run))
                if zh is not None:
                    found = (k, zh)
                    break
            if found is None:
                prev_rewritten = False
                i += 1
                continue
            k, zh = found
            start, end = words[i].start(), words[i + k - 1].end()
            gap = low[last:start]
            if gap.isspace() and prev_rewritten:
                gap = ""  # two rewritten words: one Chinese phrase
            elif gap[-1:].isspace() and gap.rstrip()[-1:].isdigit():
                gap = gap.rstrip()  # "9 hao lou" → 9号楼
            out.append(gap)
            out.append(zh)
            last = end
            # a digit right after ("lou 3") joins too
            nxt = low[end : end + 2]
            if nxt[:1].isspace() and nxt[1:].isdigit():
                last = end + 1
            prev_rewritten = True
            i += k
        if not out:
            return low
        out.append(low[last:])
        return "".join(out)


class Classifier:
    """Rule-based complaint reader; build it with ``Classifier.load()`` (takes about half a second)."""

    def __init__(self, rules: Rules, tokenizer: Any, learned: Learned | None = None) -> None:
        self.rules = rules
        self._tk = tokenizer
        # jieba's HMM-free cut, same tokens at half the cost (all words are added by now).
        self._segment = Segmenter(tokenizer).lcut
        self.learned = learned if rules.learned is not None else None
        index: dict[str, list[tuple[str, float]]] = {}
        for cat in rules.categories.values():
            for word, weight in cat.keywords.items():
                index.setdefault(word, []).append((cat.name, weight))
        self._index = index
        self._max_ngram = _MAX_NGRAM
        self._max_kw_len = min(8, max((len(w) for w in index), default=2))
        # Every prefix of every keyword: lets both passes stop as soon as no keyword can follow.
        self._prefixes = frozenset(w[:i] for w in index for i in range(1, len(w) + 1))
        self._prefix2 = frozenset(w[:2] for w in index if len(w) >= 2)
        self._levels = {lvl: i for i, lvl in enumerate(URGENCY_LEVELS)}
        self._cat_order = {c: i for i, c in enumerate(rules.categories)}
        self._translate = _Translator(rules.translate)
        # For each cue pattern, characters or character pairs one of which any match contains
        # (``needed_pieces``): a text without them is not searched at all, and most texts lack
        # most cues. Each such cue gets a slot number; ``_cue_index`` maps a piece to the slots
        # that need it, so one pass over the text's pieces names the cues worth searching.
        # Rarer pieces rule out more texts; jieba's count of a character as a word says how
        # common it is, and a pair is taken to be far rarer than either of its characters.
        freq = tokenizer.FREQ

        def rarity(piece: str) -> float:
            return min(freq.get(c, 0) + 1 for c in piece) * (1.0 if len(piece) == 1 else 0.05)

        self.cue_needs: list[frozenset[str]] = []  # by slot
        cue_index: dict[str, list[int]] = {}

        def needs(p: re.Pattern[str]) -> int | None:
            pieces = needed_pieces(p, rarity)
            if pieces is None:
                return None  # searched in every text
            self.cue_needs.append(pieces)
            for piece in pieces:
                cue_index.setdefault(piece, []).append(len(self.cue_needs) - 1)
            return len(self.cue_needs) - 1

        self._urgency_rules = [(r, self._levels[r.level], needs(r.pattern)) for r in rules.urgency]
        self._contexts = [
            (c, tuple((p, needs(p)) for p in c.all_of), tuple((p, needs(p)) for p in c.none_of))
            for c in rules.contexts
        ]
        self._emotion_cues = [(cue, needs(cue.pattern)) for cue in rules.emotion]
        self._cue_index = {piece: tuple(slots) for piece, slots in cue_index.items()}

    def possible_cues(self, low: str) -> set[int]:
        """Slots of the cues whose needed pieces ``low`` contains (all C-level iteration)."""
        pieces = chain(low, map(str.__add__, low, low[1:]))
        return set(chain.from_iterable(map(self._cue_index.get, pieces, repeat(()))))

    @classmethod
    def load(cls, rules_path: str | Path | None = None, *, with_learned: bool = True) -> Classifier:
        rules = load_rules(rules_path)
        tk = _new_tokenizer()
        words = set(rules.userdict)
        for cat in rules.categories.values():
            words.update(cat.keywords)
        for w in sorted(words):
            if len(w) >= 2:
                # suggest_freq (via freq=None) makes the word win against its own pieces.
                tk.add_word(w)
        learned = None
        ls = rules.learned
        if (
            with_learned
            and ls is not None
            and (ls.category_weight > 0 or ls.emergency_above is not None or ls.angry_above is not None)
        ):
            try:
                learned = load_learned(ls.file)
            except LearnedError as exc:
                raise RulesError(f"规则文件 {rules.path} 的 [learned]: {exc}") from None
        return cls(rules, tk, learned)

    def _read(self, text: str) -> tuple[str, str, str, list[str]]:
        """Normalised text, lower-cased, translated (what the rules match), and its tokens."""
        norm = normalise(text)
        lowered = norm.lower()
        low = self._translate(lowered)
        return norm, lowered, low, (self._segment(low) if low else [])

    def tokenize(self, text: str) -> list[str]:
        """The tokens the classifier reads — also what ``--learn`` counts."""
        return self._read(text)[3]

    @property
    def categories(self) -> dict[str, str]:
        """Known categories, in rules-file order, with their Chinese labels (for 修改类别 buttons)."""
        return {name: c.label for name, c in self.rules.categories.items()}

    # -- steps -------------------------------------------------------------------------------
    def _match_keywords(self, tokens: list[str]) -> list[tuple[int, str, list[tuple[str, float]]]]:
        index, negators = self._index, self.rules.negators
        hits: list[tuple[int, str, list[tuple[str, float]]]] = []
        n = len(tokens)
        i = 0
        pos = 0
        prefixes = self._prefixes
        while i < n:
            found = None
            s = ""
            for k in range(1, min(self._max_ngram, n - i) + 1):
                s += tokens[i + k - 1]
                if s not in prefixes:
                    break
                if s in index:
                    found = (k, s)  # keep going: a longer keyword wins
            if found is None:
                pos += len(tokens[i])
                i += 1
                continue
            k, s = found
            if not (i > 0 and tokens[i - 1] in negators):
                hits.append((pos, s, index[s]))
            pos += len(s)
            i += k
        return hits

    def _scan_gaps(self, low: str, hits: list[tuple[int, str, list[tuple[str, float]]]]) -> None:
        """Second pass over the characters no token-level keyword covered.

        jieba sometimes glues a keyword to its neighbour ("垃圾堆", "油|烟熏"); scanning only the
        uncovered stretches keeps the whole-word protection (水电费 already covered, so no 电费).
        """
        index, negators, maxlen, prefix2 = self._index, self.rules.negators, self._max_kw_len, self._prefix2
        covered = bytearray(len(low))
        for pos, word, _ in hits:
            covered[pos : pos + len(word)] = b"\x01" * len(word)
        j, n = 0, len(low)
        while j < n - 1:
            if covered[j] or low[j : j + 2] not in prefix2:
                j += 1
                continue
            for length in range(min(maxlen, n - j), 1, -1):
                s = low[j : j + length]
                if s in index and not any(covered[j : j + length]):
                    if low[j - 1 : j] not in negators and low[max(0, j - 2) : j] not in negators:
                        hits.append((j, s, index[s]))
                    j += length - 1
                    break
            j += 1

    def explain(self, text: str) -> dict[str, Any]:
        """The result plus why: every category's score and the context rules that fired.

        For administrators tuning ``rules.toml`` (``wuye classify --explain``).
        """
        trace: dict[str, Any] = {}
        res = self._classify(text, trace)
        return {"result": res.to_dict(), **trace}

    def classify(self, text: str) -> Classification:
        return self._classify(text, None)

    def _classify(self, text: str, trace: dict[str, Any] | None) -> Classification:
        rules = self.rules
        if not isinstance(text, str):
            text = str(text)
        norm, lowered, low, tokens = self._read(text)
        hits = self._match_keywords(tokens)
        self._scan_gaps(low, hits)
        hits.sort(key=lambda h: h[0])

        # Urgency cues are read before the context rules: a question or a thank-you in the same
        # text ("保安在哪里？") must never hide an emergency, so capping rules are then skipped.
        possible = self.possible_cues(low)
        raw_level, urg_words, emergency_cancelled, hazard_boosts = self._urgency(low, possible)
        top_level = len(URGENCY_LEVELS) - 1
        if raw_level == top_level and rules.emergency_void is not None and rules.emergency_void.search(low):
            # The danger is over: the text is what remains of it (a complaint, a question, a thanks).
            raw_level, urg_words, _, hazard_boosts = self._urgency(low, possible, below=top_level)
            emergency_cancelled = True
        emergency = raw_level == top_level
        # Context rules first decide which keyword hits to drop, then scale and boost.
        active = []
        for c, all_of, none_of in self._contexts:
            if emergency and (c.urgency_cap is not None or c.not_in_emergency):
                continue
            for p, slot in all_of:
                if (slot is not None and slot not in possible) or p.search(low) is None:
                    break
            else:
                for p, slot in none_of:
                    if (slot is None or slot in possible) and p.search(low) is not None:
                        break
                else:
                    active.append(c)
        dropped: set[str] = set()
        for c in active:
            dropped |= c.drop
        scores: dict[str, float] = dict.fromkeys(rules.categories, 0.0)
        first_pos: dict[str, int] = {}
        cat_words: dict[str, list[str]] = {}
        seen: set[str] = set()
        for pos, word, cats in hits:
            if word in dropped or word in seen:
                continue
            seen.add(word)  # a word repeated ("吵死了吵死了") counts once
            for cat, w in cats:
                scores[cat] += w
                first_pos.setdefault(cat, pos)
                cat_words.setdefault(cat, []).append(word)
        has_hits = {c for c, v in scores.items() if v > 0}
        if emergency:
            for boost in hazard_boosts:
                for cat, v in boost.items():
                    scores[cat] += v
                    first_pos.setdefault(cat, len(low))
        cap: str | None = None
        for c in active:
            for cat, v in c.boost.items():
                scores[cat] += v
                first_pos.setdefault(cat, len(low))
            for cat, f in c.scale.items():
                scores[cat] *= f
            if c.urgency_cap is not None and (cap is None or self._levels[c.urgency_cap] < self._levels[cap]):
                cap = c.urgency_cap

        # Learned weights (self.learned is only set when rules.learned is): one score per text.
        learned, lset = self.learned, rules.learned
        lscore = learned.score(features(tokens)) if learned is not None and lset is not None else None
        combined = scores
        if lscore is not None and lset is not None and lset.category_weight > 0:
            nb = lscore.category
            combined = {c: v + lset.category_weight * nb.get(c, 0.0) for c, v in scores.items()}
        if rules.first_mention_bonus and len(has_hits) > 1:
            # ties (one word counting for two categories) go to the rules file's order, not a set's
            first = min(has_hits, key=lambda c: (first_pos[c], self._cat_order[c]))
            combined = {**combined, first: combined[first] + rules.first_mention_bonus}
        ranked = sorted(combined.items(), key=lambda kv: (-kv[1], first_pos.get(kv[0], 1 << 30)))
        if trace is not None:
            trace["rule_scores"] = {c: round(v, 3) for c, v in scores.items()}
            trace["scores"] = {c: round(v, 3) for c, v in ranked}
            trace["contexts"] = [c.name for c in active]
            trace["category_keywords"] = cat_words
            trace["dropped"] = sorted(dropped)
        top_cat, top = ranked[0]
        second = max(0.0, ranked[1][1]) if len(ranked) > 1 else 0.0
        if top < rules.min_score:
            category = rules.fallback
            confidence = 0.0 if not low else round(min(_GUESS_CONFIDENCE, 0.1 + top / 10), 3)
        else:
            category = top_cat
            confidence = round(top / (top + second + 1.5), 3)
            if not any(v > 0 for v in scores.values()):
                # No rule scored (no keyword, context or hazard): the learned word counts alone
                # are right about three times in four on unseen authors' texts, and an address
                # alone leans to repairs.
                confidence = min(confidence, _GUESS_CONFIDENCE)
        # Secondary categories are what the resident *named*: rule scores, not learned leanings.
        rule_top = scores[category]
        secondary = [
            c
            for c, _ in ranked[1:]
            if c != category
            and c in has_hits
            and scores[c] >= max(rules.secondary_min, rules.secondary_ratio * rule_top)
        ]

        level = max(raw_level, self._levels[rules.categories[category].min_urgency])
        if cap is not None:
            level = min(level, self._levels[cap])
        if (
            lscore is not None
            and lset is not None
            and lset.emergency_above is not None
            and level < top_level
            and cap is None
            and not emergency_cancelled
            and (not lset.emergency_categories or category in lset.emergency_categories)
            and lscore.emergency > lset.emergency_above
        ):
            level = top_level
        urgency = URGENCY_LEVELS[level]
        angry, emo_words = self._emotion(low, possible, urgency)
        if (
            not angry
            and lscore is not None
            and lset is not None
            and lset.angry_above is not None
            and lscore.angry > lset.angry_above
        ):
            angry = True

        keywords = list(cat_words.get(category, []))
        if learned is not None and lscore is not None and len(keywords) < 2:
            # Few rule words decided it: name the learned words that did.
            keywords.extend(w for w in learned.top_words(lscore, category, 2) if w not in keywords)
        for c in secondary:
            keywords.extend(w for w in cat_words.get(c, []) if w not in keywords)
        keywords.extend(w for w in urg_words + emo_words if w not in keywords)
        return Classification(
            category=category,
            secondary=secondary,
            urgency=urgency,
            emotion="angry" if angry else "calm",
            location=extract_location(
                low if low != lowered else norm, rules.areas, rules.not_areas, rules.area_aliases
            ),
            phone=extract_phone(norm),
            keywords=keywords[:12],
            confidence=confidence,
        )

    def _urgency(
        self, low: str, possible: set[int], below: int | None = None
    ) -> tuple[int, list[str], bool, list[dict[str, float]]]:
        """Highest level whose cues appear (index into URGENCY_LEVELS) and the matched cue texts.

        A rule's ``unless`` cue cancels a match only when it stands in the same clause(s) as the
        match: "电梯坏了，上次也坏过" is still an emergency, "上次电梯坏了" is not. A cue may span
        clauses ("暖气不热 冰凉冰凉的 老人冻得直哆嗦"); then all the clauses it touches count.
        """
        level = 0
        words: list[str] = []
        # An emergency cue that its own "unless" cancelled (past, hypothetical, resolved): learned
        # weights must not bring back what the rules deliberately set aside.
        cancelled = False
        boosts: list[dict[str, float]] = []
        top = len(URGENCY_LEVELS) - 1
        bounds: tuple[list[int], list[int]] | None = None
        for rule, lv, slot in self._urgency_rules:
            if (below is not None and lv >= below) or (slot is not None and slot not in possible):
                continue
            if rule.unless is None:
                # Without an "unless" the clause does not matter; the whole text also catches
                # cues spread over two clauses ("押金交了一年了，还不退").
                if level > lv:
                    continue  # a higher level is already certain (rules list emergencies first)
                m = rule.pattern.search(low)
                if m:
                    words.append(m.group(0))
                    level = max(level, lv)
                    if rule.boost:
                        boosts.append(rule.boost)
                continue
            if level >= lv:
                continue
            # A cancelled match is searched again one character on, not after its end: a long
            # match spanning clauses ("电梯又困人了!!!上个月…里面") must not hide the short one
            # inside it ("困人") that its own clause does not cancel.
            m = rule.pattern.search(low)
            while m is not None:
                if bounds is None:
                    seps = list(_CLAUSE_RE.finditer(low))
                    bounds = ([b.start() for b in seps], [b.end() for b in seps])
                starts, ends = bounds  # of the separators, both ascending
                # The clause runs from the last separator ending at or before the match to the
                # first one starting at or after it.
                i = bisect_right(ends, m.start())
                j = bisect_left(starts, m.end())
                clause = low[ends[i - 1] if i else 0 : starts[j] if j < len(starts) else len(low)]
                if not rule.unless.search(clause) or (
                    rule.despite is not None and rule.despite.search(clause)
                ):
                    words.append(m.group(0))
                    level = max(level, lv)
                    if rule.boost:
                        boosts.append(rule.boost)
                    break
                if lv == top:
                    cancelled = True
                m = rule.pattern.search(low, m.start() + 1)
        return level, words, cancelled, boosts

    def _emotion(self, low: str, possible: set[int], urgency: str) -> tuple[bool, list[str]]:
        score = 0.0
        words: list[str] = []
        for cue, slot in self._emotion_cues:
            if urgency in cue.not_in_urgency or (slot is not None and slot not in possible):
                continue
            m = cue.pattern.search(low)
            if m:
                score += cue.weight
                words.append(m.group(0))
        return score >= self.rules.angry_threshold, words


async def load_classifier_async(rules_path: str | Path | None = None) -> Classifier:
    """Load in a worker thread: jieba's dictionary takes ~0.5 s and must not block the event loop."""
    import asyncio

    return await asyncio.to_thread(Classifier.load, rules_path)
