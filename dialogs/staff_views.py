"""Cards and buttons for staff, supervisors and managers, and the resident's 回访 card.

Shared by the staff dialogs and the notifier (which queues the same cards in the outbox).
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from complaints.model import Complaint, Status, Urgency
from complaints.views import category_label, local_text
from dialogs.texts import q, short


class StaffAction(CallbackData, prefix="s"):
    """accept | contact | transfer | escalate | delay | resolve | external | open | take"""

    action: str
    number: str


class FollowUpAction(CallbackData, prefix="f"):
    """The resident's 回访: solved | unsolved | rate (value 1–5) | skip (no comment)."""

    action: str
    number: str
    value: int = 0


ESCALATION_REASONS = {
    "angry": "业主情绪激动",
    "manual": "处理人员上报",
    "resolve_overdue": "超过处理时限未完成",
    "resolve_overdue_again": "上移后仍未处理完毕",
    "accept_overdue": "超时未接单",
    "unreachable": "处理人员无法联系",
    "staff_attitude": "服务态度投诉",
}


def _when(dt: datetime, tz: tzinfo) -> str:
    return local_text(dt, tz)


# Residents often type their number into the description: staff see it masked like the contact
# field until they press 联系业主 (which is logged). Mobiles, and landlines with an area code.
_PHONE_IN_TEXT = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?(1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}|0\d{2,3}[\s-]?\d{7,8})(?!\d)")


def mask_phones(text: str) -> str:
    """``电话13812345678`` → ``电话138****5678`` in free text shown to staff."""
    def masked(m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(1))
        return f"{digits[:3]}****{digits[-4:]}"
    return _PHONE_IN_TEXT.sub(masked, text)


def staff_text(text: str, limit: int) -> str:
    """A resident's words for a staff message: phones masked, shortened, HTML-escaped."""
    return q(short(mask_phones(text), limit))


def split_message(text: str, limit: int = 3900) -> list[str]:
    """Telegram takes 4096 characters per message: long reports go out in parts, cut at lines."""
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # one absurdly long line: cut it hard
            if current:
                parts.append(current)
                current = ""
            parts.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
    if current or not parts:
        parts.append(current)
    return parts


def assignment_card(c: Complaint, tz: tzinfo, *, resident_name: str | None, review: bool = False) -> str:
    urgency = Urgency(c.urgency)
    head = "🔁 复核投诉" if review else ("🚨 紧急投诉" if urgency is Urgency.EMERGENCY else "📋 新投诉")
    flags = []
    if c.is_angry:
        flags.append("业主情绪激动")
    if c.is_repeat:
        flags.append("重复投诉")
    lines = [f"<b>{head} {c.number}</b>【{urgency.label}】" + (f" ⚠️{'、'.join(flags)}" if flags else ""),
             f"类别:{q(category_label(c.category))}",
             f"位置:{q(c.location.describe())}",
             f"内容:{staff_text(c.text, 600)}"]
    if c.anonymous:
        lines.append("业主:匿名")
    else:
        who = q(resident_name or c.contact.name or "业主")
        phone = c.contact.masked_phone
        lines.append(f"业主:{who}" + (f" {phone}" if phone else ""))
    lines.append(f"接单时限:{_when(c.accept_by, tz)}")
    lines.append(f"处理时限:{_when(c.resolve_by, tz)}")
    if c.attachments:
        lines.append(f"照片/视频:{len(c.attachments)} 个(见上方)")
    return "\n".join(lines)


def staff_keyboard(c: Complaint) -> InlineKeyboardMarkup:
    def b(text: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(text=text, callback_data=StaffAction(action=action, number=c.number).pack())

    rows: list[list[InlineKeyboardButton]] = []
    if c.status in (Status.ASSIGNED, Status.REVIEW, Status.SUBMITTED):
        rows.append([b("✅ 接单", "accept"), b("📞 联系业主", "contact")])
    else:
        rows.append([b("📞 联系业主", "contact")])
    rows.append([b("🔀 转派", "transfer"), b("⬆️ 上报", "escalate")])
    rows.append([b("⏳ 延期", "delay"), b("🏁 处理完成", "resolve")])
    rows.append([b("🚫 非物业职责", "external")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def supervisor_keyboard(c: Complaint) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="🙋 我来处理", callback_data=StaffAction(action="take", number=c.number).pack()),
        InlineKeyboardButton(text="🔀 改派", callback_data=StaffAction(action="transfer", number=c.number).pack()),
    ], [InlineKeyboardButton(text="📄 详情", callback_data=StaffAction(action="open", number=c.number).pack())]])


def escalation_notice(c: Complaint, tz: tzinfo, *, reason: str, level: int, assignee: str | None,
                      note: str | None) -> str:
    who = "经理" if level >= 2 else "客服主任"
    lines = [f"<b>⚠️ 服务上移({who})</b> {c.number}【{Urgency(c.urgency).label}】",
             f"原因:{ESCALATION_REASONS.get(reason, q(reason))}"]
    if note and reason == "manual":
        lines.append(f"说明:{staff_text(note, 300)}")
    lines += [f"类别:{q(category_label(c.category))} · 状态:{c.status.label}",
              f"处理人:{q(assignee or '待分派')}",
              f"处理时限:{_when(c.resolve_by, tz)}",
              f"内容:{staff_text(c.text, 300)}"]
    return "\n".join(lines)


def reminder(c: Complaint, tz: tzinfo, kind: str) -> str:
    if kind == "accept":
        return (f"⏰ 提醒:投诉 {c.number} 尚未接单,接单时限 {_when(c.accept_by, tz)}。"
                "请尽快接单并联系业主。")
    return (f"⏰ 提醒:投诉 {c.number} 将于 {_when(c.resolve_by, tz)} 到期,请抓紧处理;"
            "如无法按时完成,请上报说明原因。")


def follow_up_card(c: Complaint) -> tuple[str, InlineKeyboardMarkup]:
    result = f"\n处理结果:{q(short(c.resolution, 300))}" if c.resolution else ""
    text = (f"您好,您的投诉 <b>{c.number}</b> 已处理完毕。{result}\n"
            "请问问题解决了吗?您的反馈对我们很重要。")
    markup = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="👍 已解决", callback_data=FollowUpAction(action="solved", number=c.number).pack()),
        InlineKeyboardButton(text="👎 未解决", callback_data=FollowUpAction(action="unsolved", number=c.number).pack()),
    ]])
    return text, markup


def stars_keyboard(number: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="⭐" * n, callback_data=FollowUpAction(action="rate", number=number, value=n).pack())
        for n in range(1, 4)
    ], [
        InlineKeyboardButton(text="⭐" * n, callback_data=FollowUpAction(action="rate", number=number, value=n).pack())
        for n in range(4, 6)
    ]])


def task_line(c: Complaint, tz: tzinfo, now: datetime) -> str:
    overdue = " ⚠️已超时" if c.is_overdue(now) else ""
    return (f"{c.number} · {c.status.label} · {Urgency(c.urgency).label} · "
            f"{q(category_label(c.category))} · 时限 {_when(c.resolve_by, tz)}{overdue}")


def tasks_keyboard(numbers: list[str]) -> InlineKeyboardMarkup | None:
    if not numbers:
        return None
    rows = [[InlineKeyboardButton(text=n, callback_data=StaffAction(action="open", number=n).pack())]
            for n in numbers[:20]]
    return InlineKeyboardMarkup(inline_keyboard=rows)
