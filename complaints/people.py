"""Residents and staff as the domain sees them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from complaints.model import ROLE_LABELS, Actor, Role, mask_phone


@dataclass
class Resident:
    id: int | None
    telegram_id: int | None
    name: str | None = None
    phone: str | None = None
    prefers_anonymous: bool = False
    created_at: datetime | None = None

    def as_actor(self) -> Actor:
        assert self.id is not None, "resident must be saved before acting"
        return Actor.resident(self.id, self.name or "")

    @property
    def masked_phone(self) -> str | None:
        return mask_phone(self.phone)


@dataclass
class Staff:
    id: int | None
    telegram_id: int
    name: str
    role: Role
    phone: str | None = None
    active: bool = True
    reachable: bool = True
    created_at: datetime | None = None

    def as_actor(self) -> Actor:
        assert self.id is not None, "staff must be saved before acting"
        return Actor.staff(self.id, self.role, self.name)

    @property
    def role_label(self) -> str:
        return ROLE_LABELS[self.role]
