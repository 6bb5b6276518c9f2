"""Telegram formatting: HTML / MarkdownV2 / Markdown parsing into (plain text, entities).

Modelled on tdlib's parsers (the code behind the real Bot API server) closely enough that the
error texts start the same way ("can't parse entities: ...") and entity offsets are in UTF-16
code units, as Telegram reports them.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any


class EntityParseError(ValueError):
    """Raised with the text that follows "Bad Request: can't parse entities: "."""


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(text: str, index: int) -> int:
    # tdlib reports positions as UTF-8 byte offsets into the original string.
    return len(text[:index].encode("utf-8"))


@dataclass
class _Builder:
    """Accumulates plain text while tracking its UTF-16 length for entity offsets."""

    parts: list[str] = field(default_factory=list)
    length: int = 0

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.length += utf16_len(chunk)

    def text(self) -> str:
        return "".join(self.parts)


# ---------------------------------------------------------------------------------------- HTML

_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z]+);")
_NAME_CHARS = re.compile(r"[A-Za-z0-9\-]*")
_ATTR_NAME = re.compile(r"[A-Za-z0-9_\-]*")


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the output
    byte_offset: int


def parse_html(source: str, *, strict: bool = True) -> tuple[str, list[dict[str, Any]]]:
    """Parse Telegram-flavoured HTML.

    ``strict`` additionally rejects a bare ``&`` (not starting a known entity) and a bare ``>``.
    Real Telegram tolerates both, but a bot that forgets ``html.escape`` on user input is only
    saved by luck (the next "<3" breaks it), so tests should fail early.
    """
    out = _Builder()
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "&":
            m = _ENTITY_RE.match(source, i)
            decoded: str | None = None
            if m:
                body = m.group(1)
                if body.startswith("#"):
                    try:
                        code = int(body[2:], 16) if body[1:2] in "xX" else int(body[1:])
                        decoded = chr(code) if 0 < code < 0x110000 else None
                    except ValueError:
                        decoded = None
                else:
                    decoded = _NAMED_ENTITIES.get(body.lower() if body.isupper() else body)
            if decoded is not None and m is not None:
                out.add(decoded)
                i = m.end()
                continue
            if strict:
                raise EntityParseError(
                    f'Unescaped "&" at byte offset {_byte_offset(source, i)}; use "&amp;" '
                    "(real Telegram keeps a bare \"&\", the emulator is strict on purpose)"
                )
            out.add("&")
            i += 1
            continue
        if ch == ">":
            if strict:
                raise EntityParseError(
                    f'Unescaped ">" at byte offset {_byte_offset(source, i)}; use "&gt;" '
                    '(real Telegram keeps a bare ">", the emulator is strict on purpose)'
                )
            out.add(ch)
            i += 1
            continue
        if ch != "<":
            # Copy a run of ordinary characters at once.
            j = i + 1
            while j < n and source[j] not in "<>&":
                j += 1
            out.add(source[i:j])
            i = j
            continue

        begin = i
        if i + 1 < n and source[i + 1] == "/":
            m = _NAME_CHARS.match(source, i + 2)
            assert m is not None
            name = m.group(0).lower()
            j = m.end()
            while j < n and source[j] in " \t\r\n":
                j += 1
            if j >= n or source[j] != ">":
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(source, begin)}")
            if not stack:
                raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(source, begin)}")
            top = stack[-1]
            if top.name != name:
                raise EntityParseError(
                    f"Unmatched end tag at byte offset {_byte_offset(source, begin)}, "
                    f'expected "</{top.name}>", found "</{name}>"'
                )
            stack.pop()
            _close_html_tag(top, out.length, stack, entities)
            i = j + 1
            continue

        m = _NAME_CHARS.match(source, i + 1)
        assert m is not None
        name = m.group(0).lower()
        j = m.end()
        if not name:
            raise EntityParseError(f'Unsupported start tag "" at byte offset {_byte_offset(source, begin)}')
        if name not in _HTML_TAGS:
            raise EntityParseError(
                f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, begin)}'
            )
        attrs: dict[str, str] = {}
        while True:
            while j < n and source[j] in " \t\r\n":
                j += 1
            if j >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(source, begin)}")
            if source[j] == ">":
                j += 1
                break
            am = _ATTR_NAME.match(source, j)
            assert am is not None
            attr = am.group(0).lower()
            if not attr:
                raise EntityParseError(
                    f'Empty attribute name in the tag "{name}" at byte offset {_byte_offset(source, begin)}'
                )
            j = am.end()
            while j < n and source[j] in " \t\r\n":
                j += 1
            value = ""
            if j < n and source[j] == "=":
                j += 1
                while j < n and source[j] in " \t\r\n":
                    j += 1
                if j >= n:
                    raise EntityParseError(
                        f"Unclosed start tag at byte offset {_byte_offset(source, begin)}"
                    )
                if source[j] in "\"'":
                    quote = source[j]
                    end = source.find(quote, j + 1)
                    if end < 0:
                        raise EntityParseError(
                            f"Unclosed start tag at byte offset {_byte_offset(source, begin)}"
                        )
                    value = html.unescape(source[j + 1 : end])
                    j = end + 1
                else:
                    k = j
                    while k < n and source[k] not in " \t\r\n>":
                        k += 1
                    value = html.unescape(source[j:k])
                    j = k
            attrs[attr] = value
        if name == "span" and attrs.get("class") != "tg-spoiler":
            raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(source, begin)}')
        if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
            raise EntityParseError(f'Invalid custom emoji identifier specified at byte offset {_byte_offset(source, begin)}')
        stack.append(_OpenTag(name, attrs, out.length, _byte_offset(source, begin)))
        i = j

    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    return out.text(), _sorted(entities)


def _close_html_tag(tag: _OpenTag, end: int, stack: list[_OpenTag], entities: list[dict[str, Any]]) -> None:
    length = end - tag.start
    kind = _HTML_TAGS[tag.name]
    if tag.name == "code" and stack and stack[-1].name == "pre":
        # <pre><code class="language-x"> is one pre entity with a language, like Telegram does.
        language = tag.attrs.get("class", "")
        if language.startswith("language-"):
            stack[-1].attrs["_language"] = language[len("language-") :]
        return
    if length <= 0:
        return
    entity: dict[str, Any] = {"type": kind, "offset": tag.start, "length": length}
    if kind == "text_link":
        href = tag.attrs.get("href", "")
        if not href:
            return
        user_id = href[len("tg://user?id="):] if href.startswith("tg://user?id=") else ""
        if user_id.isdigit():
            entity = {"type": "text_mention", "offset": tag.start, "length": length,
                      "user": {"id": int(user_id), "is_bot": False, "first_name": ""}}
        else:
            entity["url"] = href
    elif kind == "pre":
        if tag.attrs.get("_language"):
            entity["language"] = tag.attrs["_language"]
    elif kind == "blockquote":
        if "expandable" in tag.attrs:
            entity["type"] = "expandable_blockquote"
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = tag.attrs["emoji-id"]
    entities.append(entity)


def _sorted(entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Telegram lists outer entities first when they start at the same offset.
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


# ---------------------------------------------------------------------------------- MarkdownV2

_RESERVED_V2 = set("_*[]()~`>#+-=|{}.!")
_V2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
    "code": "Code",
    "pre": "Pre",
}


@dataclass
class _OpenMd:
    kind: str
    start: int
    byte_offset: int
    language: str = ""


def parse_markdown_v2(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    stack: list[_OpenMd] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(source)
    line_start = True
    quote_start: int | None = None  # UTF-16 offset where the current blockquote began

    def close_quote() -> None:
        nonlocal quote_start
        if quote_start is not None:
            end = out.length
            # The trailing newline isn't part of the quote.
            text_so_far = out.text()
            if text_so_far.endswith("\n"):
                end -= 1
            if end > quote_start:
                entities.append({"type": "blockquote", "offset": quote_start, "length": end - quote_start})
            quote_start = None

    while i < n:
        ch = source[i]
        top = stack[-1] if stack else None
        if line_start:
            line_start = False
            if ch == ">" and not (top and top.kind in ("code", "pre")):
                if quote_start is None:
                    quote_start = out.length
                i += 1
                continue
            close_quote()
        if ch == "\\" and i + 1 < n and 0 < ord(source[i + 1]) < 127:
            out.add(source[i + 1])
            i += 2
            continue
        if top and top.kind in ("code", "pre"):
            if top.kind == "pre" and source.startswith("```", i):
                stack.pop()
                _add_md_entity(entities, top, out.length)
                i += 3
                continue
            if top.kind == "code" and ch == "`":
                stack.pop()
                _add_md_entity(entities, top, out.length)
                i += 1
                continue
            out.add(ch)
            if ch == "\n":
                line_start = True
            i += 1
            continue
        if ch == "\n":
            out.add(ch)
            line_start = True
            i += 1
            continue
        if ch not in _RESERVED_V2:
            out.add(ch)
            i += 1
            continue

        kind: str | None = None
        width = 1
        if ch == "_" and source.startswith("__", i):
            kind, width = "underline", 2
        elif ch == "_":
            kind = "italic"
        elif ch == "*":
            kind = "bold"
        elif ch == "~":
            kind = "strikethrough"
        elif ch == "|" and source.startswith("||", i):
            kind, width = "spoiler", 2
        elif ch == "`" and source.startswith("```", i):
            # ```language\n ... ```
            j = i + 3
            nl = source.find("\n", j)
            language = ""
            if nl >= 0 and re.fullmatch(r"[A-Za-z0-9_+\-#]*", source[j:nl]):
                language = source[j:nl]
                j = nl + 1
            stack.append(_OpenMd("pre", out.length, _byte_offset(source, i), language))
            i = j
            continue
        elif ch == "`":
            stack.append(_OpenMd("code", out.length, _byte_offset(source, i)))
            i += 1
            continue
        elif ch == "[":
            stack.append(_OpenMd("text_link", out.length, _byte_offset(source, i)))
            i += 1
            continue
        elif ch == "!" and source.startswith("![", i):
            stack.append(_OpenMd("custom_emoji", out.length, _byte_offset(source, i)))
            i += 2
            continue
        elif ch == "]" and top and top.kind in ("text_link", "custom_emoji"):
            stack.pop()
            url = ""
            j = i + 1
            if j < n and source[j] == "(":
                k = j + 1
                buf: list[str] = []
                while k < n and source[k] != ")":
                    if source[k] == "\\" and k + 1 < n:
                        buf.append(source[k + 1])
                        k += 2
                        continue
                    buf.append(source[k])
                    k += 1
                if k >= n:
                    raise EntityParseError(f"Can't find end of a url at byte offset {_byte_offset(source, j)}")
                url = "".join(buf)
                j = k + 1
            length = out.length - top.start
            if length > 0 and url:
                if top.kind == "custom_emoji":
                    emoji_id = url.split("id=", 1)[-1]
                    entities.append({"type": "custom_emoji", "offset": top.start, "length": length,
                                     "custom_emoji_id": emoji_id})
                else:
                    entities.append({"type": "text_link", "offset": top.start, "length": length, "url": url})
            i = j
            continue
        if kind is None:
            raise EntityParseError(
                f"Character '{ch}' is reserved and must be escaped with the preceding '\\'"
            )
        if top and top.kind == kind:
            stack.pop()
            _add_md_entity(entities, top, out.length)
        else:
            stack.append(_OpenMd(kind, out.length, _byte_offset(source, i)))
        i += width

    if stack:
        top = stack[-1]
        raise EntityParseError(
            f"Can't find end of {_V2_NAMES.get(top.kind, top.kind)} entity at byte offset {top.byte_offset}"
        )
    close_quote()
    return out.text(), _sorted(entities)


def _add_md_entity(entities: list[dict[str, Any]], tag: _OpenMd, end: int) -> None:
    if end > tag.start:
        entity: dict[str, Any] = {"type": tag.kind, "offset": tag.start, "length": end - tag.start}
        if tag.language:
            entity["language"] = tag.language
        entities.append(entity)


# ------------------------------------------------------------------------------ legacy Markdown

_LEGACY = {"*": "bold", "_": "italic", "`": "code"}


def parse_markdown(source: str) -> tuple[str, list[dict[str, Any]]]:
    out = _Builder()
    entities: list[dict[str, Any]] = []
    i, n = 0, len(source)
    while i < n:
        ch = source[i]
        if ch == "\\" and i + 1 < n and source[i + 1] in "_*`[":
            out.add(source[i + 1])
            i += 2
            continue
        if ch not in "_*`[":
            out.add(ch)
            i += 1
            continue
        begin = i
        if ch == "`" and source.startswith("```", i):
            end = source.find("```", i + 3)
            if end < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(source, begin)}"
                )
            body = source[i + 3 : end]
            language = ""
            if "\n" in body:
                first, rest = body.split("\n", 1)
                if re.fullmatch(r"[A-Za-z0-9_+\-#]*", first):
                    language, body = first, rest
            start = out.length
            out.add(body)
            if body:
                entity: dict[str, Any] = {"type": "pre", "offset": start, "length": out.length - start}
                if language:
                    entity["language"] = language
                entities.append(entity)
            i = end + 3
            continue
        if ch == "[":
            end = source.find("]", i + 1)
            if end < 0 or not source.startswith("(", end + 1) or source.find(")", end + 2) < 0:
                raise EntityParseError(
                    f"Can't find end of the entity starting at byte offset {_byte_offset(source, begin)}"
                )
            url_end = source.find(")", end + 2)
            start = out.length
            out.add(source[i + 1 : end])
            if out.length > start:
                entities.append({"type": "text_link", "offset": start, "length": out.length - start,
                                 "url": source[end + 2 : url_end]})
            i = url_end + 1
            continue
        end = source.find(ch, i + 1)
        if end < 0:
            raise EntityParseError(
                f"Can't find end of the entity starting at byte offset {_byte_offset(source, begin)}"
            )
        start = out.length
        out.add(source[i + 1 : end])
        if out.length > start:
            entities.append({"type": _LEGACY[ch], "offset": start, "length": out.length - start})
        i = end + 1
    return out.text(), _sorted(entities)


# ----------------------------------------------------------------------------------- front door


def parse_formatted(
    text: str, parse_mode: str | None, *, strict_html: bool = True
) -> tuple[str, list[dict[str, Any]]]:
    """Return (plain text, entities); raises EntityParseError or ValueError (bad parse_mode)."""
    mode = (parse_mode or "").lower()
    if mode in ("", "none"):
        return text, []
    if mode == "html":
        return parse_html(text, strict=strict_html)
    if mode == "markdownv2":
        return parse_markdown_v2(text)
    if mode == "markdown":
        return parse_markdown(text)
    raise ValueError("unsupported parse_mode")


def strip_formatted(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim surrounding whitespace the way Telegram does, moving and clipping entities."""
    stripped_left = text.lstrip()
    shift = utf16_len(text) - utf16_len(stripped_left)
    result = stripped_left.rstrip()
    total = utf16_len(result)
    fixed: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            fixed.append({**entity, "offset": start, "length": end - start})
    return result, fixed


def validate_entities(text: str, entities: Any) -> list[dict[str, Any]]:
    """Check explicitly passed ``entities`` (instead of parse_mode) for sane offsets."""
    if not isinstance(entities, list):
        raise EntityParseError("entities must be an array")
    total = utf16_len(text)
    result: list[dict[str, Any]] = []
    for entity in entities:
        if not isinstance(entity, dict) or "type" not in entity:
            raise EntityParseError("entity must be an object with a type")
        try:
            offset, length = int(entity["offset"]), int(entity["length"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EntityParseError("entity offset/length must be integers") from exc
        if offset < 0 or length <= 0 or offset + length > total:
            continue  # Telegram silently drops entities that fall outside the text
        result.append({k: v for k, v in entity.items() if v is not None})
    return _sorted(result)
