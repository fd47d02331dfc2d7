"""The load: how long and how hard (``Load``), and the ``LoadGenerator`` that drives the updates."""
from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from stack_harness.chaos.constants import INVOICE_TIMEOUT, PLAN_DAYS, STEP_TIMEOUT
from stack_harness.chaos.harness import ChaosRun, PayerOutcome


@dataclass(frozen=True)
class Load:
    """How long and how hard a scenario drives the server.

    ``rate`` is the feeder's updates a second (commands, button presses,
    pre-checkouts) spread over ``users``; ``payers`` full purchases are
    started at even intervals. ``duplicate_probability`` is the chance that
    an acknowledged update is delivered again.
    """

    seconds: float = 5.0
    rate: float = 12.0
    users: int = 30
    payers: int = 3
    duplicate_probability: float = 0.05
    connections: int = 8
    request_timeout: float = 5.0
    warmup: float = 1.0
    rss_growth_limit_mib: float = 64.0


class LoadGenerator:
    """The mixed load: a feeder of commands, button presses and pre-checkouts from many users,
    and payers who go from /start through a plan button to a paid invoice.

    The feeder does not wait for answers (Telegram queues updates whatever
    the bot does); each payer waits for each step, as a person would.
    """

    ACTIONS: ClassVar[dict[str, int]] = {
        "start": 25, "plans": 10, "status": 15, "help": 10, "chatter": 5, "buy": 15, "stale_button": 5,
        "forged_checkout": 8, "real_checkout": 7,
    }

    def __init__(self, run: ChaosRun, user_base: int = 20_000, payer_base: int = 50_000) -> None:
        self.run = run
        self.users = [user_base + index for index in range(run.load.users)]
        for user_id in self.users:  # they talk to the bot, so the bot may write to them
            run.emulator.user(user_id, has_started_bot=True)
        self.payer_ids = itertools.count(payer_base)
        self._invoices: dict[int, dict] = {}
        self._invoice_since = 0
        self._names = list(self.ACTIONS)
        self._weights = list(self.ACTIONS.values())

    def drive(self, injector_done: threading.Event) -> None:
        """Feed until the load's time is up and the faults are over; start payers along the way."""
        run, load = self.run, self.run.load
        started = time.monotonic()
        payer_times = [started + load.warmup + index * max(0.0, load.seconds - load.warmup) / max(1, load.payers)
                       for index in range(load.payers)]
        futures: list[Future] = []
        with ThreadPoolExecutor(max_workers=max(1, min(load.payers, 8)), thread_name_prefix="payer") as payers:
            interval, due = 1.0 / load.rate, started
            while not run.stop.is_set():
                run.ensure_server()
                now = time.monotonic()
                if now >= run.load_deadline and injector_done.is_set():
                    break
                while payer_times and payer_times[0] <= now:
                    payer_times.pop(0)
                    futures.append(payers.submit(self.purchase, next(self.payer_ids)))
                self.feed_one()
                due += interval
                run.stop.wait(max(0.0, due - time.monotonic()))  # pacing
            for future in futures:
                run.payers.append(future.result(timeout=STEP_TIMEOUT * 2 + INVOICE_TIMEOUT + 30))

    # --- the feeder ------------------------------------------------------------------------------

    def feed_one(self) -> None:
        user_id = self.run.rng.choice(self.users)
        action = self.run.rng.choices(self._names, self._weights)[0]
        getattr(self, f"_{action}")(user_id)

    def _start(self, user_id: int) -> None:
        self.run.submit_start(user_id)

    def _plans(self, user_id: int) -> None:
        self.run.submit_command(user_id, "/plans")

    def _status(self, user_id: int) -> None:
        self.run.submit_command(user_id, "/status")

    def _help(self, user_id: int) -> None:
        self.run.submit_command(user_id, "/help")

    def _chatter(self, user_id: int) -> None:
        self.run.submit_command(user_id, self.run.rng.choice(["hello", "how do I join?", "👋"]))

    def _buy(self, user_id: int) -> None:
        self.run.submit_button(user_id, f"buy:{self.run.rng.choice(list(PLAN_DAYS))}")

    def _stale_button(self, user_id: int) -> None:
        self.run.submit_button(user_id, "buy:gold")

    def _forged_checkout(self, user_id: int) -> None:
        self.run.submit_pre_checkout(user_id, f"forged-{self.run.rng.getrandbits(48):x}", 250, expect_ok=False)

    def _real_checkout(self, user_id: int) -> None:
        """A pre-checkout for an invoice the bot really issued to this user (who then does not pay)."""
        invoice = self._invoice_of(user_id)
        if invoice is None:
            self._buy(user_id)
            return
        self.run.submit_pre_checkout(user_id, invoice["payload"], invoice["prices"][0]["amount"], expect_ok=True)

    def _invoice_of(self, user_id: int) -> dict | None:
        for call in self.run.emulator.calls("sendInvoice", since=self._invoice_since):
            self._invoice_since = call.index + 1
            if call.ok:
                self._invoices[call.params["chat_id"]] = call.params
        return self._invoices.get(user_id)

    # --- payers ------------------------------------------------------------------------------------

    def purchase(self, user_id: int) -> PayerOutcome:
        """One payer's purchase; an exception is the harness's problem and is reported as such."""
        outcome = PayerOutcome(user_id, self.run.rng.choice(list(PLAN_DAYS)))
        try:
            return self._purchase(outcome)
        except Exception as error:  # noqa: BLE001 - reported as a violation by check_payments
            outcome.stage = f"error: {type(error).__name__}: {error}"
            return outcome

    def _purchase(self, outcome: PayerOutcome) -> PayerOutcome:
        """/start, press a plan button, wait for the invoice, pay it through the emulator's pay flow."""
        run, user_id = self.run, outcome.user_id
        run.emulator.user(user_id, has_started_bot=True)
        start = run.submit_start(user_id)
        if not start.wait(STEP_TIMEOUT):
            outcome.stage = "/start not acknowledged"
            return outcome
        since = run.emulator.next_call_index
        press = run.submit_button(user_id, f"buy:{outcome.plan}", _message_of(start.first_response))
        if not press.wait(STEP_TIMEOUT):
            outcome.stage = "button press not acknowledged"
            return outcome
        try:
            invoice = run.emulator.wait_for_call(
                "sendInvoice", lambda call: call.ok and call.params.get("chat_id") == user_id,
                timeout=INVOICE_TIMEOUT, since=since)
        except TimeoutError:
            outcome.stage = "no invoice"
            return outcome
        paid = run.emulator.pay_invoice(user_id, invoice)
        run.add_external(paid.pre_checkout.delivery if paid.pre_checkout else None)
        run.add_external(paid.delivery)
        outcome.stage = "paid" if paid.ok else f"payment not made: {paid.reason}"
        outcome.charge_id = paid.charge_id
        return outcome


def _message_of(call: Any) -> dict | None:
    """The Message a sendMessage call returned (the plan menu), if that is what rode on the answer."""
    if call is not None and getattr(call, "method", None) == "sendMessage" and call.ok:
        return call.result
    return None
