"""jieba's accurate mode without HMM (``Tokenizer.lcut(text, HMM=False)``), in one pass.

jieba builds a dict of candidate word ends for every character, then walks it backwards calling
``math.log`` through a generator for every candidate. On complaint-sized texts that bookkeeping
costs more than the dictionary look-ups themselves. ``Segmenter`` does the same look-ups and the
same arithmetic (so the same floating-point scores, ties broken the same way: the longer word
wins) in a single backward loop, with each word's log-probability computed once per process.

Same dictionary, same tokens: tests/test_intents.py compares it with jieba on every labelled text
and on random strings.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["Segmenter"]

# jieba's own block and skip patterns (jieba/__init__.py: re_han_default, re_skip_default).
_HAN_RE = re.compile("([\u4e00-\u9fd5a-zA-Z0-9+#&\\._%\\-]+)")
_SKIP_RE = re.compile("(\r\n|\\s)")
_ENG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


class Segmenter:
    """Segments like ``tokenizer.lcut(text, HMM=False)`` for a tokenizer whose words are all added."""

    def __init__(self, tokenizer: Any) -> None:
        self._freq: dict[str, int] = tokenizer.FREQ
        self._logtotal = math.log(tokenizer.total)
        # word → log(freq) - log(total), filled on first use (the dictionary has 350,000 words; a
        # complaint desk meets a few thousand of them).
        self._logp: dict[str, float] = {}

    def lcut(self, text: str) -> list[str]:
        out: list[str] = []
        han = _HAN_RE.match
        for blk in _HAN_RE.split(text):
            if not blk:
                continue
            if han(blk):
                self._cut_block(blk, out)
            else:
                for x in _SKIP_RE.split(blk):
                    if _SKIP_RE.match(x):
                        out.append(x)
                    else:
                        out.extend(x)
        return out

    def _cut_block(self, s: str, out: list[str]) -> None:
        word_freq, logp, logtotal = self._freq.get, self._logp, self._logtotal
        n = len(s)
        score = [0.0] * (n + 1)
        end = list(range(n + 1))  # end[k]: one past the last character of the best word at k
        log = math.log
        for k in range(n - 1, -1, -1):
            best = None
            best_end = k + 1
            i = k + 1
            frag = s[k]
            # The dictionary holds every prefix of every word (count 0 when not a word itself).
            while (f := word_freq(frag)) is not None:
                if f:
                    w = logp.get(frag)
                    if w is None:
                        w = logp[frag] = log(f) - logtotal
                    v = w + score[i]
                    # max() over (score, x) in jieba: equal scores go to the longer word.
                    if best is None or v >= best:
                        best, best_end = v, i
                if i >= n:
                    break
                i += 1
                frag = s[k:i]
            if best is None:
                # No dictionary word starts here: the character alone, with jieba's "or 1".
                best = (0.0 - logtotal) + score[k + 1]
            score[k] = best
            end[k] = best_end
        # Walk forward; runs of single latin letters and digits join into one token, as in jieba.
        x = 0
        buf = ""
        eng = _ENG_CHARS
        while x < n:
            y = end[x]
            if y == x + 1 and s[x] in eng:
                buf += s[x]
            else:
                if buf:
                    out.append(buf)
                    buf = ""
                out.append(s[x:y])
            x = y
        if buf:
            out.append(buf)
