"""Run the emulator on its own, for the local sandbox or the benchmark.

    python -m botapi_emulator --port 8081 --token 123456:TEST-token [--channel-id -1001000000001]

Prints its URL (set it as the bot's TELEGRAM_API_URL) and serves until
interrupted; drive it through the HTTP control surface under /control/.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from .emulator import DEFAULT_CHANNEL_ID, DEFAULT_TOKEN, BotApiEmulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m botapi_emulator", description="Telegram Bot API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port")
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--channel-id", type=int, default=DEFAULT_CHANNEL_ID)
    parser.add_argument("--lenient", action="store_true", help="answer unknown methods and mistyped params")
    parser.add_argument("--verbose", action="store_true", help="log every HTTP request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    emulator = BotApiEmulator(token=args.token, channel_id=args.channel_id, strict=not args.lenient,
                              host=args.host, port=args.port)
    with emulator:
        print(f"Bot API emulator at {emulator.url} (token {args.token}, channel {args.channel_id})", flush=True)
        try:
            stopped.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
