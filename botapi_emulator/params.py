"""Read a Bot API call's parameters from any of the ways clients send them.

Telegram accepts the query string, ``application/x-www-form-urlencoded``,
``multipart/form-data`` and JSON bodies, and so does the emulator: a bot that
switches from one HTTP client to another must see the same answers.  Values
from the query string and forms stay text (``spec.coerce_param`` types them);
JSON bodies keep their native values.
"""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from .errors import bad_request
from .spec import UploadedFile


def parse_call_params(query: str, content_type: str | None, body: bytes) -> dict[str, Any]:
    """Merge query-string and body parameters (the body wins, as on Telegram)."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    params.update(parse_body(content_type, body))
    return params


def parse_body(content_type: str | None, body: bytes) -> dict[str, Any]:
    """Decode a request (or webhook response) body by its content type."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if media_type == "application/json":
        return _parse_json_object(body)
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    if media_type == "multipart/form-data":
        return _parse_multipart(content_type or "", body)
    return {}


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(body)
    except ValueError:
        raise bad_request("can't parse JSON encoded request body") from None
    if not isinstance(decoded, dict):
        raise bad_request("JSON encoded request body must be an object")
    return decoded


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    """Parse multipart/form-data with the stdlib email parser (``cgi`` is gone in 3.13)."""
    envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(envelope + body)
    if not message.is_multipart():
        raise bad_request("can't parse multipart/form-data request body")
    params: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            params[name] = UploadedFile(filename, part.get_content_type(), payload)
        else:
            charset = part.get_content_charset() or "utf-8"
            params[name] = payload.decode(charset, errors="replace")
    return params
