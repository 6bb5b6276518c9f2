"""Plain renderings of a complaint (dicts, short Chinese lines) shared by the CLI and the dialogs."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from complaints.model import CATEGORY_LABELS, Complaint, ComplaintEvent, Urgency


def local_iso(dt: datetime | None, tz: tzinfo) -> str | None:
    return dt.astimezone(tz).isoformat(timespec="seconds") if dt else None


def local_text(dt: datetime | None, tz: tzinfo) -> str:
    """``11月27日 17:00`` — how a person reads a deadline."""
    if dt is None:
        return "—"
    local = dt.astimezone(tz)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def category_label(category: str) -> str:
    return CATEGORY_LABELS.get(category, category)


def event_to_dict(e: ComplaintEvent, tz: tzinfo) -> dict[str, Any]:
    return {
        "kind": str(e.kind), "label": e.label, "at": local_iso(e.at, tz), "actor_kind": str(e.actor_kind),
        "actor_id": e.actor_id, "actor_role": e.actor_role,
        "from_status": str(e.from_status) if e.from_status else None,
        "to_status": str(e.to_status) if e.to_status else None, "note": e.note, "data": e.data,
    }


def complaint_to_dict(c: Complaint, tz: tzinfo, *, with_history: bool = True,
                      reveal_phone: bool = False) -> dict[str, Any]:
    """Everything about a complaint; the phone is masked unless the caller may see it."""
    data: dict[str, Any] = {
        "number": c.number, "status": str(c.status), "status_label": c.status.label,
        "category": c.category, "category_label": category_label(c.category),
        "secondary": list(c.secondary), "urgency": str(c.urgency), "urgency_label": Urgency(c.urgency).label,
        "emotion": str(c.emotion), "channel": str(c.channel), "text": c.text,
        "location": {"building": c.location.building, "unit": c.location.unit, "room": c.location.room,
                     "area": c.location.area, "text": c.location.text, "label": c.location.describe()},
        "anonymous": c.anonymous,
        "contact": {"name": c.contact.name,
                    "phone": c.contact.phone if reveal_phone else c.contact.masked_phone},
        "resident_id": c.resident_id, "assignee_id": c.assignee_id, "is_repeat": c.is_repeat,
        "escalation_level": c.escalation_level, "attachments": len(c.attachments),
        "created_at": local_iso(c.created_at, tz), "accept_by": local_iso(c.accept_by, tz),
        "resolve_by": local_iso(c.resolve_by, tz), "accepted_at": local_iso(c.accepted_at, tz),
        "resolved_at": local_iso(c.resolved_at, tz), "closed_at": local_iso(c.closed_at, tz),
        "satisfied": c.satisfied, "rating": c.rating, "resolution": c.resolution,
        "external_referral": c.external_referral,
    }
    if with_history:
        data["history"] = [event_to_dict(e, tz) for e in c.history]
    return data
