"""The aiogram peer: aiogram 3 on aiohttp, acknowledging each update after its handler.

Runs in its own virtualenv (``bench/.venv-aiogram``, from
``requirements-aiogram.txt``), under gunicorn with aiohttp's worker class,
as many worker processes as the gthread servers have. ``SimpleRequestHandler``
with ``handle_in_background=False`` runs the handler inside the webhook
request, so the 200 means the update was handled; the ``/start`` handler
awaits ``message.answer`` through the Bot API (the emulator), so every
acknowledged update got its reply. One event loop per worker takes any
number of connections at once: no thread count bounds it, the CPU does.
No database (aiogram keeps no ledger of its own).
"""
from __future__ import annotations

import os

from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import CommandStart
from aiogram.types import Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

router = Router()


@router.message(CommandStart())
async def start(message: Message) -> None:
    await message.answer(f"Welcome, {message.from_user.first_name}!")


async def ok(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_app() -> web.Application:
    """The webhook app; the bot's HTTP session opens lazily, inside the worker's own event loop."""
    api = TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"].rstrip("/"))
    bot = Bot(os.environ["BOT_TOKEN"], session=AiohttpSession(api=api, timeout=15))
    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    application = web.Application()
    SimpleRequestHandler(dispatcher, bot, handle_in_background=False,
                         secret_token=os.environ["WEBHOOK_SECRET"]).register(application, path="/webhook")
    application.router.add_get("/livez", ok)
    application.router.add_get("/health", ok)
    setup_application(application, dispatcher, bot=bot)  # closes the bot's session at shutdown
    return application


app = build_app()
