"""Fault injection: make chosen Bot API methods fail or stall, deterministically or by chance."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

_DESCRIPTIONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass
class FaultRule:
    """One rule. ``times`` = how many more calls it fires for (None: unlimited);
    ``probability`` = chance per matching call (drawn from the injector's seeded RNG)."""

    method: str  # canonical method name, or "*" for every method
    status: int | None = None  # None: no error, only ``delay``
    description: str = ""
    parameters: dict[str, Any] | None = None
    delay: float = 0.0
    times: int | None = None
    probability: float | None = None
    token: str | None = None  # limit the rule to one bot
    hits: int = 0
    active: bool = True
    _injector: FaultInjector | None = field(default=None, repr=False, compare=False)

    def matches(self, method: str, token: str) -> bool:
        if not self.active:
            return False
        if self.method != "*" and self.method.lower() != method.lower():
            return False
        return self.token is None or self.token == token

    def remove(self) -> None:
        self.active = False
        if self._injector is not None and self in self._injector.rules:
            self._injector.rules.remove(self)

    def response(self) -> dict[str, Any] | None:
        if self.status is None:
            return None
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


class FaultInjector:
    """Rules are checked in insertion order; the first one that fires decides the call.

    A fired delay-only rule doesn't stop the search, so "slow and then 500" can be combined.
    """

    def __init__(self, seed: int | None = 0) -> None:
        self.rules: list[FaultRule] = []
        self._rng = random.Random(seed)

    def seed(self, seed: int | None) -> None:
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule) -> FaultRule:
        rule._injector = self
        self.rules.append(rule)
        return rule

    def retry_after(
        self,
        method: str,
        seconds: int = 1,
        *,
        times: int | None = 1,
        probability: float | None = None,
        token: str | None = None,
    ) -> FaultRule:
        """429 "Too Many Requests: retry after N" with ``parameters.retry_after`` like Telegram's flood control."""
        return self.add(
            FaultRule(
                method,
                status=429,
                description=f"Too Many Requests: retry after {seconds}",
                parameters={"retry_after": seconds},
                times=times,
                probability=probability,
                token=token,
            )
        )

    def server_error(
        self,
        method: str,
        status: int = 500,
        *,
        description: str | None = None,
        times: int | None = 1,
        probability: float | None = None,
        token: str | None = None,
    ) -> FaultRule:
        return self.add(
            FaultRule(
                method,
                status=status,
                description=description or _DESCRIPTIONS.get(status, "Internal Server Error"),
                times=times,
                probability=probability,
                token=token,
            )
        )

    def error(
        self,
        method: str,
        status: int,
        description: str,
        *,
        parameters: dict[str, Any] | None = None,
        times: int | None = 1,
        probability: float | None = None,
        token: str | None = None,
    ) -> FaultRule:
        """Any Telegram-shaped error, e.g. ``error("sendMessage", 400, "Bad Request: chat not found")``."""
        return self.add(
            FaultRule(method, status=status, description=description, parameters=parameters,
                      times=times, probability=probability, token=token)
        )

    def slow(
        self,
        method: str,
        delay: float,
        *,
        times: int | None = 1,
        probability: float | None = None,
        token: str | None = None,
    ) -> FaultRule:
        """Answer normally but only after ``delay`` seconds (the call is executed after the wait)."""
        return self.add(FaultRule(method, delay=delay, times=times, probability=probability, token=token))

    def clear(self, method: str | None = None) -> None:
        for rule in list(self.rules):
            if method is None or rule.method.lower() == method.lower():
                rule.remove()

    def pick(self, method: str, token: str) -> tuple[float, dict[str, Any] | None, list[FaultRule]]:
        """Decide the fate of one call: (delay seconds, error body or None, rules that fired)."""
        delay = 0.0
        fired: list[FaultRule] = []
        for rule in list(self.rules):
            if not rule.matches(method, token):
                continue
            if rule.probability is not None and self._rng.random() >= rule.probability:
                continue
            rule.hits += 1
            if rule.times is not None:
                rule.times -= 1
                if rule.times <= 0:
                    rule.remove()
            fired.append(rule)
            delay += rule.delay
            body = rule.response()
            if body is not None:
                return delay, body, fired
        return delay, None, fired
