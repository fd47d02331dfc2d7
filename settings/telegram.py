"""Telegram's fixed facts that the server is built against (Bot API reference).

Not settings an owner can change: the header Telegram sends the webhook
secret in, the Stars currency, the one subscription period Telegram allows,
and the shapes of tokens. Kept in one place so the webhook, the invoices, the
configuration checks and the tests agree.
"""
from __future__ import annotations

import re

# setWebhook's secret_token comes back in this header on every delivery.
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SECRET_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,256}")
BOT_TOKEN_PATTERN = re.compile(r"\d+:[A-Za-z0-9_-]+")

# Payments in Telegram Stars: currency XTR, no provider token.
STARS_CURRENCY = "XTR"
# createInvoiceLink's subscription_period: Telegram allows exactly 30 days.
SUBSCRIPTION_PERIOD_SECONDS = 30 * 24 * 3600
MAX_SUBSCRIPTION_STARS = 10_000

# setWebhook's max_connections is 1-100.
MAX_WEBHOOK_CONNECTIONS = 100
