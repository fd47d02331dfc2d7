"""The naive peer: Flask + pyTelegramBotAPI as most tutorials write it.

The webhook parses the whole update with telebot, dispatches it, and the
``/start`` handler calls ``bot.send_message``, a blocking HTTP call to the
Bot API (the emulator, answering after its configured latency), before the
webhook answers. Each request thread is busy for the whole round trip to
Telegram, so the threads, not the CPU, bound its rate. No database.
"""
from __future__ import annotations

import hmac
import os

import telebot
from flask import Flask, request
from telebot import apihelper, types

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET = os.environ["WEBHOOK_SECRET"]

# telebot keeps one keep-alive requests session per thread; every call has a timeout (5 s connect, 15 s read).
apihelper.API_URL = os.environ["TELEGRAM_API_URL"].rstrip("/") + "/bot{0}/{1}"
apihelper.CONNECT_TIMEOUT = 5
apihelper.READ_TIMEOUT = 15
bot = telebot.TeleBot(os.environ["BOT_TOKEN"], threaded=False)
app = Flask(__name__)


@bot.message_handler(commands=["start"])
def start(message: types.Message) -> None:
    bot.send_message(message.chat.id, f"Welcome, {message.from_user.first_name}!")


@app.post("/webhook")
def webhook():
    if not hmac.compare_digest(request.headers.get(SECRET_HEADER, ""), SECRET):
        return "", 401
    bot.process_new_updates([types.Update.de_json(request.get_data(as_text=True))])
    return "", 200


@app.get("/livez")
@app.get("/health")
def livez():
    return "ok"
