"""Reading typed values out of environment variables, each with one clear error."""
from __future__ import annotations

import re
from typing import Mapping
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """A setting is missing or malformed; the message is the one line an operator reads."""


def whole_number(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ConfigError(f"{name}={value} must be {bounds}")
    return value


def number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} must be true or false")


def user_ids(raw: str, name: str) -> frozenset[int]:
    ids = set()
    for part in raw.replace(" ", "").split(","):
        if not part:
            continue
        if not re.fullmatch(r"\d{1,20}", part):
            raise ConfigError(f"{name} must be comma-separated Telegram user ids, got {part!r}")
        ids.add(int(part))
    return frozenset(ids)


def chat_id(raw: str | None) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    if not re.fullmatch(r"-?\d{1,20}", raw.strip()):
        raise ConfigError(f"CHANNEL_ID must be a numeric chat id such as -1001234567890, got {raw!r}")
    return int(raw)


def http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"TELEGRAM_API_URL={raw!r} is not an http(s) URL")
    return raw.rstrip("/")


def choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    """One of a few words, case-insensitive; anything else is named with what is allowed."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in allowed:
        raise ConfigError(f"{name}={raw!r} must be one of {', '.join(allowed)}")
    return raw.lower()


def bearer_token(raw: str | None, name: str) -> str | None:
    """A secret sent in an Authorization header: long enough to guess, no spaces."""
    if raw is None or not raw.strip():
        return None
    token = raw.strip()
    if len(token) < 16 or not re.fullmatch(r"[\x21-\x7e]+", token):
        raise ConfigError(f"{name} must be at least 16 printable characters without spaces")
    return token


def domain(raw: str | None, name: str) -> str | None:
    """A bare host name such as bot-production.up.railway.app (no scheme, no path)."""
    if raw is None or not raw.strip():
        return None
    host = raw.strip()
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?", host):
        raise ConfigError(f"{name}={raw!r} is not a host name such as bot-production.up.railway.app")
    return host
