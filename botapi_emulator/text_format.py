"""Message text as Telegram sees it: HTML parse mode, entities, UTF-16 lengths.

Why: Telegram refuses malformed HTML (``can't parse entities``) and counts the
4096-character limit after markup is removed, in UTF-16 code units.  A bot
that puts an unescaped ``<`` from a user's name into an HTML message fails in
production; the emulator makes it fail in tests too.  Markdown and MarkdownV2
are accepted as they are (not checked).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from .errors import bad_request

MAX_MESSAGE_LENGTH = 4096

# Tag -> entity type, per the "HTML style" section of the Bot API docs.
_SIMPLE_TAGS = {
    "b": "bold", "strong": "bold",
    "i": "italic", "em": "italic",
    "u": "underline", "ins": "underline",
    "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "a": "text_link",
    "tg-emoji": "custom_emoji",
    "span": "spoiler",
    "tg-time": "date_time",
}

_BOT_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")


def utf16_length(text: str) -> int:
    """Telegram measures offsets and lengths in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def bot_command_entities(text: str) -> list[dict]:
    """The ``bot_command`` entities Telegram attaches to ``/command`` words."""
    return [
        {"type": "bot_command", "offset": utf16_length(text[: match.start()]), "length": utf16_length(match.group())}
        for match in _BOT_COMMAND.finditer(text)
    ]


def render_text(text: str, parse_mode: str | None) -> tuple[str, list[dict]]:
    """Return the plain text and entities Telegram would store for a sent text."""
    if parse_mode and parse_mode.lower() == "html":
        plain, entities = _HtmlEntityParser.parse(text)
    else:
        plain, entities = text, []
    if not plain.strip():
        raise bad_request("message text is empty")
    if utf16_length(plain) > MAX_MESSAGE_LENGTH:
        raise bad_request("message is too long")
    return plain, entities


class _HtmlEntityParser(HTMLParser):
    """Converts Telegram's HTML subset to plain text plus entities, refusing the rest."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._line_starts = [0] + [index + 1 for index, char in enumerate(source) if char == "\n"]
        self._plain: list[str] = []
        self._open: list[tuple[str, int, dict]] = []
        self.entities: list[dict] = []

    @classmethod
    def parse(cls, source: str) -> tuple[str, list[dict]]:
        parser = cls(source)
        parser.feed(source)
        parser.close()
        if parser._open:
            raise _entities_error(f'Can\'t find end tag corresponding to start tag "{parser._open[-1][0]}"')
        parser.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(parser._plain), parser.entities

    def _offset(self) -> int:
        return utf16_length("".join(self._plain))

    def _byte_offset(self) -> int:
        """Where the parser is, in bytes of the UTF-8 source (Telegram's error messages count bytes)."""
        line, column = self.getpos()
        return len(self._source[: self._line_starts[line - 1] + column].encode("utf-8"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        entity_type = _SIMPLE_TAGS.get(tag)
        attributes = dict(attrs)
        if entity_type is None or (tag == "span" and attributes.get("class") != "tg-spoiler"):
            raise _entities_error(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')
        self._open.append((tag, self._offset(), attributes))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _entities_error(f'Unsupported start tag "{tag}/" at byte offset {self._byte_offset()}')

    def handle_endtag(self, tag: str) -> None:
        if not self._open or self._open[-1][0] != tag:
            raise _entities_error(f'Unexpected end tag at byte offset {self._byte_offset()}')
        opened_tag, start, attributes = self._open.pop()
        length = self._offset() - start
        if length > 0:
            self.entities.append(self._entity(opened_tag, start, length, attributes))

    def handle_data(self, data: str) -> None:
        self._plain.append(data)

    @staticmethod
    def _entity(tag: str, offset: int, length: int, attributes: dict) -> dict:
        entity = {"type": _SIMPLE_TAGS[tag], "offset": offset, "length": length}
        if tag == "a":
            href = attributes.get("href") or ""
            user_id = re.fullmatch(r"tg://user\?id=(\d+)", href)
            if user_id:
                entity["type"] = "text_mention"
                entity["user"] = {"id": int(user_id.group(1)), "is_bot": False, "first_name": "User"}
            else:
                entity["url"] = href
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attributes.get("emoji-id") or ""
        elif tag == "blockquote" and "expandable" in attributes:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-time":
            entity["unix_time"] = int(attributes.get("unix") or 0)
        return entity


def _entities_error(detail: str):
    return bad_request(f"can't parse entities: {detail}")
