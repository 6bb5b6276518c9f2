"""From a complaint's new events to timers and outbox messages, inside the same transaction.

This is the event sink the service layer calls before it commits: a change and the messages it
causes are saved together or not at all. Each message carries a dedup key (complaint, event,
recipient), so handling an event twice never queues a message twice.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram.types import InlineKeyboardMarkup

from complaints import timers
from complaints.deadlines import DeadlinePolicy
from complaints.model import Complaint, ComplaintEvent, EventKind, Role, Status, Urgency
from complaints.ports import UnitOfWork
from complaints.views import local_text
from dialogs import staff_views as sv
from dialogs.texts import q, short

logger = logging.getLogger(__name__)


def message_payload(text: str, markup: InlineKeyboardMarkup | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"text": text, "parse_mode": "HTML"}
    if markup is not None:
        payload["reply_markup"] = markup.model_dump(exclude_none=True)
    return payload


class Notifications:
    """The :class:`~complaints.services.EventSink` of the running bot."""

    def __init__(self, policy: DeadlinePolicy) -> None:
        self.policy = policy

    async def __call__(self, uow: UnitOfWork, complaint: Complaint) -> None:
        events = list(complaint.pending_events)
        complaint.pending_events.clear()
        if not events:
            return
        now = events[-1].at
        for spec in timers.plan(complaint, events, self.policy):
            await uow.timers.schedule(spec.kind, spec.due_at, spec.key, at=now, complaint_id=complaint.id,
                                      data=spec.data)
        first_seq = len(complaint.history) - len(events) + 1
        for offset, event in enumerate(events):
            await self._on_event(uow, complaint, event, first_seq + offset)

    # ---- recipients ----------------------------------------------------------------------------
    async def _staff_chat(self, uow: UnitOfWork, staff_id: int | None) -> tuple[int, str] | None:
        if staff_id is None:
            return None
        staff = await uow.staff.get(staff_id)
        if staff is None or not staff.active:
            return None
        return staff.telegram_id, staff.name

    async def _resident_chat(self, uow: UnitOfWork, complaint: Complaint) -> int | None:
        if complaint.resident_id is None:
            return None
        resident = await uow.residents.get(complaint.resident_id)
        return resident.telegram_id if resident else None

    async def _role_chats(self, uow: UnitOfWork, level: int) -> list[int]:
        """Level 1: supervisors (managers if there are none); level 2: managers."""
        roles = [Role.MANAGER] if level >= 2 else [Role.SUPERVISOR, Role.MANAGER]
        for role in roles:
            people = [s for s in await uow.staff.list(active_only=True, role=role) if s.reachable]
            if people:
                return [s.telegram_id for s in people]
        return []

    async def _send(self, uow: UnitOfWork, chat_id: int | None, payload: dict[str, Any], key: str,
                    at: Any, method: str = "sendMessage") -> None:
        if chat_id is None:
            return
        await uow.outbox.add(chat_id, payload, at=at, method=method, dedup_key=f"{key}:{chat_id}")

    # ---- events --------------------------------------------------------------------------------
    async def _on_event(self, uow: UnitOfWork, c: Complaint, e: ComplaintEvent, seq: int) -> None:
        tz = self.policy.tz
        key = f"ev:{c.number}:{seq}"
        kind = e.kind
        if kind in (EventKind.ASSIGNED, EventKind.TRANSFERRED):
            await self._assignment(uow, c, e, key)
        elif kind is EventKind.ACCEPTED:
            if self._accepted_before(c, seq):
                return  # a hand-over inside the team is not news for the resident
            text = (f"您好,您的投诉 {c.number} 已由工作人员受理,正在处理中,"
                    f"预计 {local_text(c.resolve_by, tz)} 前处理完毕。")
            await self._send(uow, await self._resident_chat(uow, c), message_payload(text), key, e.at)
        elif kind is EventKind.ESCALATED:
            await self._escalation(uow, c, e, key)
        elif kind is EventKind.REMINDED:
            chat = await self._staff_chat(uow, e.data.get("staff_id"))
            if chat:
                text = sv.reminder(c, tz, str(e.data.get("kind")))
                await self._send(uow, chat[0], message_payload(text, sv.staff_keyboard(c)), key, e.at)
        elif kind is EventKind.RESOLVED:
            await self._resolved(uow, c, e, key)
        elif kind is EventKind.DELAYED:
            text = (f"您好,很抱歉,您的投诉 {c.number} 未能按原定时间完成。原因:{q(short(e.note or '', 300))}\n"
                    f"新的预计完成时间:{local_text(c.resolve_by, tz)}。感谢您的理解。")
            await self._send(uow, await self._resident_chat(uow, c), message_payload(text), key, e.at)
        elif kind is EventKind.EXTERNAL:
            text = (f"您好,经核实,投诉 {c.number} 反映的问题不属于物业服务范围。"
                    f"建议您联系:{q(e.note or '')}。我们会继续关注进展,如需协助请随时联系我们。")
            await self._send(uow, await self._resident_chat(uow, c), message_payload(text), key, e.at)
        elif kind is EventKind.REVIEW:
            text = (f"您好,我们理解您的感受。投诉 {c.number} 已转客服主任复核,"
                    "会由其他同事重新跟进,并尽快与您联系。")
            await self._send(uow, await self._resident_chat(uow, c), message_payload(text), key, e.at)
        elif kind is EventKind.CLOSED and e.actor_kind == "system" and e.from_status is Status.RESOLVED:
            text = f"您好,投诉 {c.number} 已结案。感谢您对物业工作的支持,如有新的问题欢迎随时反映。"
            await self._send(uow, await self._resident_chat(uow, c), message_payload(text), key, e.at)
        elif kind is EventKind.WITHDRAWN:
            chat = await self._staff_chat(uow, c.assignee_id)
            if chat:
                await self._send(uow, chat[0], message_payload(f"业主已撤销投诉 {c.number},无需继续处理。"), key, e.at)
        elif kind is EventKind.INFO_ADDED:
            await self._info_added(uow, c, e, key)

    @staticmethod
    def _accepted_before(c: Complaint, seq: int) -> bool:
        """Was the complaint already accepted since it was registered or last sent to 复核?"""
        for earlier in reversed(c.history[:seq - 1]):
            if earlier.kind is EventKind.REVIEW:
                return False
            if earlier.kind is EventKind.ACCEPTED:
                return True
        return False

    async def _assignment(self, uow: UnitOfWork, c: Complaint, e: ComplaintEvent, key: str) -> None:
        chat = await self._staff_chat(uow, e.data.get("staff_id"))
        if chat is None:
            return
        resident_name = None
        if c.resident_id is not None and not c.anonymous:
            resident = await uow.residents.get(c.resident_id)
            resident_name = resident.name if resident else None
        await self._send_attachments(uow, chat[0], c, key, e.at)
        card = sv.assignment_card(c, self.policy.tz, resident_name=resident_name, review=c.status is Status.REVIEW)
        await self._send(uow, chat[0], message_payload(card, sv.staff_keyboard(c)), key, e.at)
        reason = e.data.get("reason")
        if reason in ("accept_overdue", "unreachable"):
            # The holder before this assignment: the event just before this one that named someone.
            here = next((i for i in range(len(c.history) - 1, -1, -1) if c.history[i] is e), len(c.history))
            missed = next((ev for ev in reversed(c.history[:here])
                           if ev.kind in (EventKind.ASSIGNED, EventKind.TRANSFERRED)), None)
            before = await self._staff_chat(uow, missed.data.get("staff_id")) if missed else None
            was = f"(原处理人:{q(before[1])})" if before else ""
            if reason == "accept_overdue":
                text = (f"⚠️ 投诉 {c.number}【{Urgency(c.urgency).label}】超时未接单{was},"
                        f"已自动转派给 {q(chat[1])}。")
            else:
                text = (f"⚠️ 投诉 {c.number}【{Urgency(c.urgency).label}】原处理人无法通过 Telegram 联系"
                        f"(未启动机器人或已屏蔽){was},已自动转派给 {q(chat[1])}。")
            for supervisor in await self._role_chats(uow, 1):
                await self._send(uow, supervisor, message_payload(text, sv.supervisor_keyboard(c)), key + ":sup", e.at)

    async def _send_attachments(self, uow: UnitOfWork, chat_id: int, c: Complaint, key: str, at: Any) -> None:
        photos = [a for a in c.attachments if a.kind in ("photo", "video")][:10]
        if len(photos) == 1:
            method = "sendPhoto" if photos[0].kind == "photo" else "sendVideo"
            field = "photo" if photos[0].kind == "photo" else "video"
            await self._send(uow, chat_id, {field: photos[0].file_id, "caption": f"{c.number} 现场照片"},
                             key + ":media", at, method=method)
        elif photos:
            media = [{"type": a.kind, "media": a.file_id} for a in photos]
            await self._send(uow, chat_id, {"media": media}, key + ":media", at, method="sendMediaGroup")

    async def _escalation(self, uow: UnitOfWork, c: Complaint, e: ComplaintEvent, key: str) -> None:
        level = int(e.data.get("level", 1))
        holder = await self._staff_chat(uow, c.assignee_id)
        text = sv.escalation_notice(c, self.policy.tz, reason=str(e.data.get("reason", "manual")), level=level,
                                    assignee=holder[1] if holder else None, note=e.note)
        for chat_id in await self._role_chats(uow, level):
            await self._send(uow, chat_id, message_payload(text, sv.supervisor_keyboard(c)), key, e.at)

    async def _resolved(self, uow: UnitOfWork, c: Complaint, e: ComplaintEvent, key: str) -> None:
        chat = await self._resident_chat(uow, c)
        if c.anonymous:
            # No 回访 for anonymous complaints: only the news that it is done.
            result = f"处理结果:{q(short(c.resolution or '', 300))}" if c.resolution else ""
            await self._send(uow, chat, message_payload(f"您好,投诉 {c.number} 已处理完毕。{result}"), key, e.at)
            return
        text, markup = sv.follow_up_card(c)
        await self._send(uow, chat, message_payload(text, markup), key, e.at)

    async def _info_added(self, uow: UnitOfWork, c: Complaint, e: ComplaintEvent, key: str) -> None:
        chat = await self._staff_chat(uow, c.assignee_id)
        if chat is None:
            return
        text = f"📎 业主为投诉 {c.number} 补充了信息" + (f":{sv.staff_text(e.note, 500)}" if e.note else "。")
        await self._send(uow, chat[0], message_payload(text), key, e.at)
        added = int(e.data.get("attachments", 0))
        for i, attachment in enumerate(c.attachments[-added:] if added else []):
            field = "photo" if attachment.kind == "photo" else "video"
            method = "sendPhoto" if attachment.kind == "photo" else "sendVideo"
            await self._send(uow, chat[0], {field: attachment.file_id}, f"{key}:att{i}", e.at, method=method)


class DailySummaryHook:
    """At 09:00 every manager gets the overdue summary (queued in the outbox like any message)."""

    def __init__(self, notifications: Notifications) -> None:
        self.notifications = notifications

    async def __call__(self, uow: UnitOfWork, now: Any) -> None:
        from notifier.reports import daily_summary, render_daily

        session = uow.session  # type: ignore[attr-defined]
        summary = await daily_summary(session, now)
        policy = self.notifications.policy
        # Every overdue complaint is listed: a long summary goes out as several messages.
        parts = sv.split_message(render_daily(summary, policy.tz))
        day = policy.to_local(now).date().isoformat()
        managers = [s for s in await uow.staff.list(active_only=True, role=Role.MANAGER)]
        for manager in managers:
            for i, part in enumerate(parts):
                suffix = f":{i}" if i else ""
                await uow.outbox.add(manager.telegram_id, message_payload(part), at=now,
                                     dedup_key=f"daily:{day}{suffix}:{manager.telegram_id}")
