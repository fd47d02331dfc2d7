"""The Bot API schema as the emulator uses it: method lookup and type checks.

Why a checker of our own: Telegram is strict about parameter types and about
the shape of objects (a reply markup without ``inline_keyboard`` is refused),
and the emulator must refuse what Telegram refuses, or a bug in the bot only
shows up in production.  The same checker validates the objects the emulator
itself produces (updates, method results), so the tests can prove that what
we feed the bot is valid Bot API JSON.

Types are written as the docs write them: ``Integer``, ``Integer or String``,
``Array of LabeledPrice``, ``InlineKeyboardMarkup or ReplyKeyboardMarkup``,
``Array of InputMediaAudio, InputMediaDocument and InputMediaPhoto``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).resolve().parent / "botapi_methods.json"

# Update kinds a webhook does not receive unless it lists them in allowed_updates.
OPT_IN_UPDATE_KINDS = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_TRUE_TEXT = {"true", "1"}
_FALSE_TEXT = {"false", "0"}


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (an ``InputFile`` on Telegram's side)."""

    filename: str
    content_type: str
    data: bytes


class SchemaError(ValueError):
    """A value does not match its documented Bot API type."""


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def canonical_method_name(name: str) -> str | None:
    """Telegram treats method names case-insensitively: ``SENDMESSAGE`` works."""
    lowered = name.lower()
    for known in load_schema()["methods"]:
        if known.lower() == lowered:
            return known
    return None


def method_params(method: str) -> dict[str, dict]:
    return load_schema()["methods"][method]


def method_return_kind(method: str) -> str:
    return load_schema()["method_returns"].get(method, "other")


def update_kinds() -> dict[str, str]:
    """Every Update field except ``update_id``, mapped to its type."""
    return load_schema()["update_kinds"]


def default_update_kinds() -> frozenset[str]:
    """What an empty ``allowed_updates`` means: every kind except the opt-in ones."""
    return frozenset(update_kinds()) - OPT_IN_UPDATE_KINDS


# --- type expressions -------------------------------------------------------------------------


def _union_members(type_expr: str) -> list[str]:
    """Split ``A or B`` and ``A, B and C`` into their members."""
    return [member.strip() for member in re.split(r",\s*|\s+or\s+|\s+and\s+", type_expr) if member.strip()]


def _describe(type_expr: str) -> str:
    article = "an" if type_expr[:1] in "AEIOU" else "a"
    return f"{article} {type_expr}"


def coerce_param(name: str, value: Any, type_expr: str) -> Any:
    """Turn one request parameter into its typed value, or raise SchemaError.

    Form and query values arrive as text: numbers are parsed, booleans read
    from ``true``/``false``/``1``/``0`` (any case: clients send ``True``), and
    objects and arrays are JSON-decoded, as Telegram does.  JSON bodies carry
    native values, which are checked as they are; Telegram also accepts a
    JSON-encoded string for an object there, so that is decoded too.
    """
    if isinstance(value, UploadedFile):
        if "InputFile" in type_expr:
            return value
        raise SchemaError(f'parameter "{name}" must be {_describe(type_expr)}, not a file')
    if isinstance(value, str) and _is_structured(type_expr):
        try:
            value = json.loads(value)
        except ValueError:
            raise SchemaError(f"can't parse {name} JSON object") from None
    typed = _coerce_number_to_string(_coerce_scalar_text(value, type_expr), type_expr)
    problems = check_value(typed, type_expr, name)
    if problems:
        raise SchemaError(problems[0])
    return typed


def _is_structured(type_expr: str) -> bool:
    """True when the type is an object or an array (sent JSON-serialized in forms)."""
    if type_expr.startswith("Array of"):
        return True
    types = load_schema()["types"]
    return any(member in types and member != "InputFile" for member in _union_members(type_expr))


def _coerce_scalar_text(value: Any, type_expr: str) -> Any:
    """Parse text for scalar types; leave anything else for ``check_value``."""
    if not isinstance(value, str):
        return value
    members = _union_members(type_expr)
    if "Integer" in members and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    if "Float" in members:
        try:
            return float(value)
        except ValueError:
            return value
    if members in (["Boolean"], ["True"]):
        lowered = value.strip().lower()
        if lowered in _TRUE_TEXT:
            return True
        if lowered in _FALSE_TEXT:
            return False
    return value


def _coerce_number_to_string(value: Any, type_expr: str) -> Any:
    """Telegram accepts a JSON number where a String is documented (``"text": 42``)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    members = _union_members(type_expr)
    if is_number and "String" in members and "Integer" not in members and "Float" not in members:
        return str(value)
    return value


def check_value(value: Any, type_expr: str, path: str = "value") -> list[str]:
    """Return the problems of ``value`` against a documented type (empty when valid)."""
    if type_expr.startswith("Array of "):
        return _check_array(value, type_expr[len("Array of "):], path)
    members = _union_members(type_expr)
    if len(members) > 1:
        for member in members:
            if not check_value(value, member, path):
                return []
        return [f'parameter "{path}" must be {_describe(type_expr)}']
    return _check_single(value, members[0], path)


def _check_array(value: Any, element_type: str, path: str) -> list[str]:
    if not isinstance(value, list):
        return [f'parameter "{path}" must be an Array of {element_type}']
    problems: list[str] = []
    for index, element in enumerate(value):
        problems.extend(check_value(element, element_type, f"{path}[{index}]"))
    return problems


_SCALAR_CHECKS = {
    "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "String": lambda v: isinstance(v, str),
    "Boolean": lambda v: isinstance(v, bool),
    "True": lambda v: v is True,
    "InputFile": lambda v: isinstance(v, UploadedFile),
}


def _check_single(value: Any, type_name: str, path: str) -> list[str]:
    scalar_check = _SCALAR_CHECKS.get(type_name)
    if scalar_check is not None:
        return [] if scalar_check(value) else [f'parameter "{path}" must be {_describe(type_name)}']
    type_spec = load_schema()["types"].get(type_name)
    if type_spec is None:
        return []  # a type this schema does not know: nothing to hold it against
    if not isinstance(value, dict):
        return [f'parameter "{path}" must be {_describe(type_name)} object']
    if "fields" in type_spec:
        return _check_fields(value, type_spec["fields"], type_name, path)
    return _check_abstract(value, type_spec["subtypes"], type_name, path)


def _check_fields(value: dict, fields: dict, type_name: str, path: str) -> list[str]:
    problems = [
        f'{type_name} "{path}" lacks required field "{field}"'
        for field, field_spec in fields.items()
        if field_spec["required"] and field not in value
    ]
    for field, field_value in value.items():
        field_spec = fields.get(field)
        if field_spec is not None:
            problems.extend(check_value(field_value, field_spec["type"], f"{path}.{field}"))
    return problems


def _check_abstract(value: dict, subtypes: list[str], type_name: str, path: str) -> list[str]:
    """An abstract type (ChatMember, BotCommandScope...) is valid as any of its subtypes."""
    if not subtypes:
        return []
    for subtype in subtypes:
        if not check_value(value, subtype, path):
            return []
    return [f'parameter "{path}" is not a valid {type_name} (any of {", ".join(subtypes)})']


def object_problems(type_name: str, value: Any) -> list[str]:
    """Validate a produced object (an Update, a Message...) against its spec type."""
    return check_value(value, type_name, type_name)
