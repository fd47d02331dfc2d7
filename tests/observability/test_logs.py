"""Log lines as Railway reads them: one JSON object per line, stacks inside, the token never."""
from __future__ import annotations

import io
import json
import logging
import threading

from observability import watchdog
from observability.logs import make_handler

TOKEN = "123456:SECRET-token_value"


def _log_through(log_format: str, emit) -> str:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logs.{log_format}")
    logger.propagate = False
    handler = make_handler(log_format, [TOKEN, TOKEN.split(":")[1]], stream)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_level_logger_message_time_and_the_stack_inside():
    def emit(logger):
        logger.info("plain %s", "line")
        try:
            raise RuntimeError(f"calling https://api.telegram.org/bot{TOKEN}/getMe\nsecond line")
        except RuntimeError:
            logger.exception("call failed")

    lines = _log_through("json", emit).splitlines()
    assert len(lines) == 2, "one object per line, the traceback included"
    plain, failed = (json.loads(line) for line in lines)
    assert plain["level"] == "INFO" and plain["logger"] == "test.logs.json" and plain["message"] == "plain line"
    assert plain["time"].endswith("+00:00") and "update_id" not in plain
    assert failed["level"] == "ERROR" and "Traceback" in failed["stack"] and "RuntimeError" in failed["stack"]
    assert TOKEN not in lines[1] and "SECRET-token_value" not in lines[1] and "<redacted>" in failed["stack"]


def test_json_lines_name_the_update_and_user_the_thread_is_handling():
    def emit(logger):
        with watchdog.tracking(4242, user_id=77):
            logger.warning("inside")
        logger.warning("outside")

    inside, outside = (json.loads(line) for line in _log_through("json", emit).splitlines())
    assert (inside["update_id"], inside["user_id"]) == (4242, 77)
    assert "update_id" not in outside and "user_id" not in outside


def test_text_lines_are_redacted_too():
    text = _log_through("text", lambda logger: logger.error("token %s in a message", TOKEN))
    assert TOKEN not in text and "<redacted>" in text and " ERROR " in text


def test_a_stack_dump_names_the_update_each_thread_handles():
    entered, release = threading.Event(), threading.Event()

    def handle():
        with watchdog.tracking(9001, user_id=5):
            entered.set()
            release.wait(10)

    thread = threading.Thread(target=handle, name="request-thread-x")
    thread.start()
    try:
        assert entered.wait(10)
        dump = watchdog.format_all_stacks()
    finally:
        release.set()
        thread.join(10)
    header = next(line for line in dump.splitlines() if line.startswith("Thread request-thread-x"))
    assert "handling update_id=9001" in header
    assert "in handle" in dump
