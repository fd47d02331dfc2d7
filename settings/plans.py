"""Membership plans: what can be bought, for how many Stars, for how long.

Plans come from the ``PLANS`` setting (a JSON list) and live in memory; the
database stores the plan id with each payment, so a plan removed later still
explains the payments made for it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from settings.telegram import MAX_SUBSCRIPTION_STARS, SUBSCRIPTION_PERIOD_SECONDS

MAX_STARS = 100_000
PLAN_ID_PATTERN = re.compile(r"[a-z0-9_]{1,16}")

DEMO_PLANS = (
    {"id": "week", "title": "One week", "stars": 75, "days": 7},
    {"id": "month", "title": "One month", "stars": 250, "days": 30},
    {"id": "monthly", "title": "Monthly subscription", "stars": 225, "days": 30, "recurring": True},
)


class PlanError(ValueError):
    pass


@dataclass(frozen=True)
class Plan:
    id: str
    title: str
    stars: int
    days: int
    recurring: bool = False


def _plan(item: object, index: int) -> Plan:
    if not isinstance(item, dict):
        raise PlanError(f"plan #{index + 1} is not an object")
    unknown = set(item) - {"id", "title", "stars", "days", "recurring"}
    if unknown:
        raise PlanError(f"plan #{index + 1} has unknown keys {sorted(unknown)}")
    plan_id, title = item.get("id"), item.get("title")
    stars, days, recurring = item.get("stars"), item.get("days"), item.get("recurring", False)
    if not isinstance(plan_id, str) or not PLAN_ID_PATTERN.fullmatch(plan_id):
        raise PlanError(f"plan #{index + 1}: id must be 1-16 of a-z, 0-9, _")
    if not isinstance(title, str) or not 1 <= len(title) <= 32:
        raise PlanError(f"plan {plan_id!r}: title must be 1-32 characters")
    if type(stars) is not int or not 1 <= stars <= MAX_STARS:
        raise PlanError(f"plan {plan_id!r}: stars must be a whole number from 1 to {MAX_STARS}")
    if type(days) is not int or not 1 <= days <= 3660:
        raise PlanError(f"plan {plan_id!r}: days must be a whole number from 1 to 3660")
    if not isinstance(recurring, bool):
        raise PlanError(f"plan {plan_id!r}: recurring must be true or false")
    if recurring and (days * 86400 != SUBSCRIPTION_PERIOD_SECONDS or stars > MAX_SUBSCRIPTION_STARS):
        raise PlanError(
            f"plan {plan_id!r}: a recurring plan must last 30 days (Telegram's only period) "
            f"and cost at most {MAX_SUBSCRIPTION_STARS} Stars"
        )
    return Plan(id=plan_id, title=title, stars=stars, days=days, recurring=recurring)


def parse_plans(raw: str | None) -> tuple[Plan, ...]:
    """Parse the PLANS JSON, or the demo plans when it is unset."""
    if raw is None or not raw.strip():
        items = list(DEMO_PLANS)
    else:
        try:
            items = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PlanError(f"not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(items, list) or not items:
        raise PlanError("expected a non-empty JSON list of plans")
    plans = tuple(_plan(item, i) for i, item in enumerate(items))
    ids = [plan.id for plan in plans]
    if len(set(ids)) != len(ids):
        raise PlanError("plan ids must be unique")
    return plans
