# SPDX-License-Identifier: Apache-2.0
"""Telegram's parse_mode=HTML, as the Bot API documents it ("Formatting options"), for the fake.

Runs in: tests only. Turns an HTML message into (text, entities) the way the server does, and
refuses what the server refuses with its wording ("can't parse entities: ..."), so a client that
sends broken markup learns it here exactly as it would from api.telegram.org:
  - only the documented tags: b strong i em u ins s strike del span(class="tg-spoiler")
    tg-spoiler a(href) tg-emoji(emoji-id) code pre blockquote(expandable); anything else,
    including a bare "<", is an "Unsupported start tag";
  - every tag closed in order ("Unmatched end tag ... expected ... found", "Can't find end tag
    corresponding to start tag");
  - entities: &lt; &gt; &amp; &quot; and numeric ones; an '&' that starts none stays literal;
  - offsets and lengths of the resulting entities in UTF-16 code units.
"""

import re

SUPPORTED = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "span": "spoiler", "tg-spoiler": "spoiler", "a": "text_link", "tg-emoji": "custom_emoji",
    "code": "code", "pre": "pre", "blockquote": "blockquote",
}
NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
ENTITY = re.compile(rb"&(?:#x([0-9a-fA-F]{1,6})|#([0-9]{1,7})|([a-zA-Z]+));")
NAME_CHARS = re.compile(rb"[a-zA-Z0-9-]*")


class ParseError(Exception):
    pass


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def _decode_entity(data, i):
    """(char, end) for the entity at data[i] ('&'), or None when it is no entity."""
    m = ENTITY.match(data, i)
    if not m:
        return None
    if m.group(1) or m.group(2):
        code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), m.end()
    name = m.group(3).decode()
    if name not in NAMED:
        return None
    return NAMED[name], m.end()


def _decode_value(raw):
    out, i = [], 0
    while i < len(raw):
        if raw[i:i + 1] == b"&":
            d = _decode_entity(raw, i)
            if d:
                out.append(d[0])
                i = d[1]
                continue
        out.append(raw[i:i + 1].decode("latin-1"))
        i += 1
    return "".join(out).encode("latin-1").decode("utf-8", "replace")


def _parse_attributes(data, i, tag, begin):
    """Attributes up to '>' of the start tag; returns (attrs, index after '>')."""
    attrs = {}
    while True:
        while i < len(data) and data[i:i + 1] in (b" ", b"\t", b"\n", b"\r"):
            i += 1
        if i >= len(data):
            raise ParseError("Unclosed start tag at byte offset %d" % begin)
        if data[i:i + 1] == b">":
            return attrs, i + 1
        if data[i:i + 2] == b"/>":
            return attrs, i + 2
        name = NAME_CHARS.match(data, i).group(0)
        if not name:
            raise ParseError('Empty attribute name in the tag "%s" at byte offset %d' % (tag, begin))
        i += len(name)
        while i < len(data) and data[i:i + 1] == b" ":
            i += 1
        if data[i:i + 1] != b"=":
            # A bare attribute ("expandable").
            attrs[name.decode().lower()] = ""
            continue
        i += 1
        while i < len(data) and data[i:i + 1] == b" ":
            i += 1
        if i >= len(data):
            raise ParseError("Unclosed start tag at byte offset %d" % begin)
        quote = data[i:i + 1]
        if quote in (b'"', b"'"):
            end = data.find(quote, i + 1)
            if end < 0:
                raise ParseError("Unclosed start tag at byte offset %d" % begin)
            value, i = data[i + 1:end], end + 1
        else:
            m = re.compile(rb"[^\s>]*").match(data, i)
            value, i = m.group(0), m.end()
        attrs[name.decode().lower()] = _decode_value(value)


def parse_html(text):
    """(plain text, entities) for an HTML message; raises ParseError like the Bot API."""
    data = text.encode("utf-8")
    out = []          # pieces of the plain text
    out_len = 0       # its length in UTF-16 units
    stack = []        # (tag, offset, attrs)
    entities = []
    i = 0
    while i < len(data):
        c = data[i:i + 1]
        if c == b"&":
            d = _decode_entity(data, i)
            if d:
                out.append(d[0])
                out_len += utf16_len(d[0])
                i = d[1]
                continue
        if c != b"<":
            # Copy one UTF-8 sequence.
            n = 1
            b = data[i]
            if b >= 0xF0:
                n = 4
            elif b >= 0xE0:
                n = 3
            elif b >= 0xC0:
                n = 2
            piece = data[i:i + n].decode("utf-8", "replace")
            out.append(piece)
            out_len += utf16_len(piece)
            i += n
            continue
        begin = i
        i += 1
        if data[i:i + 1] != b"/":
            name = NAME_CHARS.match(data, i).group(0).decode().lower()
            i += len(name)
            if i >= len(data):
                raise ParseError("Unclosed start tag at byte offset %d" % begin)
            if name not in SUPPORTED:
                raise ParseError('Unsupported start tag "%s" at byte offset %d' % (name, begin))
            attrs, i = _parse_attributes(data, i, name, begin)
            if name == "span" and attrs.get("class") != "tg-spoiler":
                raise ParseError('Tag "span" must have class "tg-spoiler" at byte offset %d' % begin)
            if name == "tg-emoji" and "emoji-id" not in attrs:
                raise ParseError('Tag "tg-emoji" must have attribute "emoji-id" at byte offset %d'
                                 % begin)
            stack.append((name, out_len, attrs))
            continue
        end = data.find(b">", i)
        if end < 0:
            raise ParseError("Unclosed end tag at byte offset %d" % begin)
        name = data[i + 1:end].decode("utf-8", "replace").strip().lower()
        i = end + 1
        if not stack:
            raise ParseError("Unexpected end tag at byte offset %d" % begin)
        open_name, offset, attrs = stack.pop()
        if name != open_name:
            raise ParseError('Unmatched end tag at byte offset %d, expected "</%s>", found "</%s>"'
                             % (begin, open_name, name))
        length = out_len - offset
        if length == 0:
            continue
        kind = SUPPORTED[open_name]
        entity = {"type": kind, "offset": offset, "length": length}
        if open_name == "a":
            href = attrs.get("href", "")
            if not href:
                continue
            entity["url"] = href
        if open_name == "blockquote" and "expandable" in attrs:
            entity["type"] = "expandable_blockquote"
        if open_name == "tg-emoji":
            entity["custom_emoji_id"] = attrs["emoji-id"]
        if open_name == "code" and stack and stack[-1][0] == "pre":
            lang = attrs.get("class", "")
            if lang.startswith("language-"):
                stack[-1][2]["language"] = lang[len("language-"):]
            continue  # <pre><code> is one pre entity
        if open_name == "pre" and attrs.get("language"):
            entity["language"] = attrs["language"]
        entities.append(entity)
    if stack:
        raise ParseError('Can\'t find end tag corresponding to start tag "%s"' % stack[-1][0])
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities
