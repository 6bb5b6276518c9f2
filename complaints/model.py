"""The complaint aggregate: what a complaint is, who may do what to it, and its history.

Every change goes through a method named after the business verb (``accept``, ``resolve``…).
The method checks the actor's right to act and the current status, changes the state and
appends an immutable :class:`ComplaintEvent`. Screens and reports read the history; nothing
rewrites it. No I/O here: the storage layer persists ``history`` and the service layer turns
``pending_events`` into notifications.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any


class DomainError(Exception):
    """A rule was broken; ``str(error)`` is a polite Chinese sentence a person can be shown."""


class PermissionDenied(DomainError):
    pass


class InvalidTransition(DomainError):
    pass


class ConcurrentUpdate(DomainError):
    """Someone else changed the complaint since it was read: the write was refused, not merged."""

    def __init__(self, message: str = "这件投诉刚刚被其他人处理过,请刷新后重试。") -> None:
        super().__init__(message)


class Category(StrEnum):
    ENVIRONMENT = "environment"
    SECURITY = "security"
    MAINTENANCE = "maintenance"
    STAFF_ATTITUDE = "staff_attitude"
    OTHER = "other"


# Categories are plain strings in the aggregate: an administrator may add one to the rules file.
CATEGORY_LABELS: dict[str, str] = {
    Category.ENVIRONMENT: "环境卫生",
    Category.SECURITY: "安全秩序",
    Category.MAINTENANCE: "设施维修",
    Category.STAFF_ATTITUDE: "服务态度",
    Category.OTHER: "其他",
}


class Urgency(StrEnum):
    EMERGENCY = "emergency"
    IMPORTANT = "important"
    GENERAL = "general"

    @property
    def label(self) -> str:
        return URGENCY_LABELS[self]

    @property
    def rank(self) -> int:
        return {Urgency.GENERAL: 0, Urgency.IMPORTANT: 1, Urgency.EMERGENCY: 2}[self]


URGENCY_LABELS = {Urgency.EMERGENCY: "紧急", Urgency.IMPORTANT: "重要", Urgency.GENERAL: "一般"}


class Emotion(StrEnum):
    ANGRY = "angry"
    CALM = "calm"


class Channel(StrEnum):
    TELEGRAM = "telegram"
    PHONE = "phone"  # 来电
    VISIT = "visit"  # 来访


class Status(StrEnum):
    SUBMITTED = "submitted"  # 受理
    ASSIGNED = "assigned"  # 分派
    IN_PROGRESS = "in_progress"  # 处理中
    RESOLVED = "resolved"  # 已处理, awaiting 回访
    CLOSED = "closed"  # 结案
    WITHDRAWN = "withdrawn"  # 撤销
    EXTERNAL = "external"  # 转外部
    REVIEW = "review"  # 复核

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


STATUS_LABELS = {
    Status.SUBMITTED: "已受理",
    Status.ASSIGNED: "已分派",
    Status.IN_PROGRESS: "处理中",
    Status.RESOLVED: "已处理,待回访",
    Status.CLOSED: "已结案",
    Status.WITHDRAWN: "已撤销",
    Status.EXTERNAL: "已转外部",
    Status.REVIEW: "复核中",
}

# Statuses in which someone at the property still owes the resident work.
OPEN_STATUSES = frozenset({Status.SUBMITTED, Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW})


class Role(StrEnum):
    MAINTENANCE = "maintenance"
    ENVIRONMENT = "environment"
    SECURITY = "security"
    SERVICE = "service"
    SUPERVISOR = "supervisor"
    MANAGER = "manager"


ROLE_LABELS = {
    Role.MAINTENANCE: "工程维修",
    Role.ENVIRONMENT: "保洁绿化",
    Role.SECURITY: "秩序维护",
    Role.SERVICE: "客服",
    Role.SUPERVISOR: "客服主任",
    Role.MANAGER: "经理",
}


class ActorKind(StrEnum):
    RESIDENT = "resident"
    STAFF = "staff"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who acts: a resident (by resident id), a staff member (by staff id and role) or the system."""

    kind: ActorKind
    id: int | None = None
    role: Role | None = None
    name: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls(ActorKind.SYSTEM, name="系统")

    @classmethod
    def resident(cls, resident_id: int, name: str = "") -> Actor:
        return cls(ActorKind.RESIDENT, resident_id, name=name)

    @classmethod
    def staff(cls, staff_id: int, role: Role | str, name: str = "") -> Actor:
        return cls(ActorKind.STAFF, staff_id, Role(role), name=name)

    @property
    def is_system(self) -> bool:
        return self.kind is ActorKind.SYSTEM

    @property
    def is_supervisor(self) -> bool:
        """Supervisors and managers may act on any complaint."""
        return self.kind is ActorKind.STAFF and self.role in (Role.SUPERVISOR, Role.MANAGER)

    @property
    def is_desk(self) -> bool:
        """The service desk (客服) registers, triages and closes, like a supervisor's clerk."""
        return self.kind is ActorKind.STAFF and self.role is Role.SERVICE


@dataclass(frozen=True)
class Location:
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    area: str | None = None  # a public area: 南门, 地库, 中心花园 …
    text: str | None = None  # the resident's own words, kept as given

    def describe(self) -> str:
        parts = []
        if self.building:
            parts.append(f"{self.building}号楼" if self.building.isdigit() else self.building)
        if self.unit:
            parts.append(f"{self.unit}单元")
        if self.room:
            parts.append(f"{self.room}室")
        if self.area:
            parts.append(self.area)
        if not parts and self.text:
            parts.append(self.text)
        return "".join(parts) or "未提供"

    @property
    def is_empty(self) -> bool:
        return not (self.building or self.unit or self.room or self.area or self.text)


@dataclass(frozen=True)
class Contact:
    name: str | None = None
    phone: str | None = None

    @property
    def masked_phone(self) -> str | None:
        return mask_phone(self.phone)


def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` → ``138****5678``; landlines keep area code and last four digits."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) <= 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


@dataclass(frozen=True)
class Attachment:
    kind: str  # photo | video | document
    file_id: str
    caption: str | None = None


class EventKind(StrEnum):
    SUBMITTED = "submitted"
    ASSIGNED = "assigned"
    ACCEPTED = "accepted"
    TRANSFERRED = "transferred"
    ESCALATED = "escalated"
    CONTACT_REVEALED = "contact_revealed"
    INFO_ADDED = "info_added"
    NOTE = "note"
    DELAYED = "delayed"
    RESOLVED = "resolved"
    FOLLOW_UP = "follow_up"
    REVIEW = "review"
    REOPENED = "reopened"
    EXTERNAL = "external"
    WITHDRAWN = "withdrawn"
    CLOSED = "closed"
    REMINDED = "reminded"
    ANONYMISED = "anonymised"


EVENT_LABELS = {
    EventKind.SUBMITTED: "登记受理",
    EventKind.ASSIGNED: "分派",
    EventKind.ACCEPTED: "接单",
    EventKind.TRANSFERRED: "转派",
    EventKind.ESCALATED: "服务上移",
    EventKind.CONTACT_REVEALED: "查看联系方式",
    EventKind.INFO_ADDED: "补充信息",
    EventKind.NOTE: "备注",
    EventKind.DELAYED: "延期",
    EventKind.RESOLVED: "处理完成",
    EventKind.FOLLOW_UP: "回访",
    EventKind.REVIEW: "复核",
    EventKind.REOPENED: "重新打开",
    EventKind.EXTERNAL: "转外部",
    EventKind.WITHDRAWN: "撤销",
    EventKind.CLOSED: "结案",
    EventKind.REMINDED: "提醒",
    EventKind.ANONYMISED: "个人信息已删除",
}

# Events that never reach the resident: internal work of the property.
INTERNAL_EVENTS = frozenset(
    {EventKind.NOTE, EventKind.CONTACT_REVEALED, EventKind.REMINDED, EventKind.TRANSFERRED}
)


@dataclass(frozen=True)
class ComplaintEvent:
    """One immutable line of a complaint's history."""

    kind: EventKind
    at: datetime
    actor_kind: ActorKind
    actor_id: int | None
    actor_role: str | None
    from_status: Status | None
    to_status: Status | None
    note: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.kind, str(self.kind))


REOPEN_WINDOW = timedelta(days=30)
MAX_ESCALATION_LEVEL = 2  # 1: supervisor, 2: manager


@dataclass
class Complaint:
    number: str
    text: str
    category: str
    urgency: Urgency
    channel: Channel
    created_at: datetime
    accept_by: datetime
    resolve_by: datetime
    resident_id: int | None = None
    contact: Contact = field(default_factory=Contact)
    anonymous: bool = False
    location: Location = field(default_factory=Location)
    emotion: Emotion = Emotion.CALM
    secondary: tuple[str, ...] = ()
    attachments: list[Attachment] = field(default_factory=list)
    is_repeat: bool = False
    status: Status = Status.SUBMITTED
    assignee_id: int | None = None
    accepted_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    escalation_level: int = 0
    satisfied: bool | None = None
    rating: int | None = None
    resolution: str | None = None
    external_referral: str | None = None
    history: list[ComplaintEvent] = field(default_factory=list)
    id: int | None = None
    # Events appended since the aggregate was loaded; the service layer turns them into messages.
    pending_events: list[ComplaintEvent] = field(default_factory=list, repr=False, compare=False)

    # ---- creation -------------------------------------------------------------------------
    @classmethod
    def register(
        cls,
        *,
        number: str,
        text: str,
        category: str,
        urgency: Urgency | str,
        channel: Channel | str,
        at: datetime,
        accept_by: datetime,
        resolve_by: datetime,
        by: Actor,
        resident_id: int | None = None,
        contact: Contact | None = None,
        anonymous: bool = False,
        location: Location | None = None,
        emotion: Emotion | str = Emotion.CALM,
        secondary: tuple[str, ...] | list[str] = (),
        attachments: list[Attachment] | None = None,
        is_repeat: bool = False,
        intake_key: str | None = None,
    ) -> Complaint:
        text = (text or "").strip()
        if not text:
            raise DomainError("投诉内容不能为空,请简单描述您遇到的问题。")
        complaint = cls(
            number=number,
            text=text,
            category=category,
            urgency=Urgency(urgency),
            channel=Channel(channel),
            created_at=at,
            accept_by=accept_by,
            resolve_by=resolve_by,
            resident_id=resident_id,
            contact=Contact() if anonymous else (contact or Contact()),
            anonymous=anonymous,
            location=location or Location(),
            emotion=Emotion(emotion),
            secondary=tuple(secondary),
            attachments=list(attachments or []),
            is_repeat=is_repeat,
        )
        complaint._record(EventKind.SUBMITTED, by, at, None, Status.SUBMITTED,
                          data={"urgency": str(complaint.urgency), "category": category,
                                "accept_by": accept_by.isoformat(), "resolve_by": resolve_by.isoformat(),
                                # The dialog's draft token: the same draft submitted again is this one.
                                **({"intake_key": intake_key} if intake_key else {})})
        return complaint

    # ---- queries ----------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_angry(self) -> bool:
        return self.emotion is Emotion.ANGRY

    def is_overdue(self, now: datetime) -> bool:
        return self.is_open and now > self.resolve_by

    def accept_overdue(self, now: datetime) -> bool:
        return self.status is Status.ASSIGNED and now > self.accept_by

    def is_owner(self, actor: Actor) -> bool:
        return actor.kind is ActorKind.RESIDENT and actor.id is not None and actor.id == self.resident_id

    def is_assignee(self, actor: Actor) -> bool:
        return actor.kind is ActorKind.STAFF and actor.id is not None and actor.id == self.assignee_id

    def public_history(self) -> list[ComplaintEvent]:
        """What the resident may see of the history: no internal notes or reveals."""
        return [e for e in self.history if e.kind not in INTERNAL_EVENTS]

    def last_event(self, kind: EventKind) -> ComplaintEvent | None:
        return next((e for e in reversed(self.history) if e.kind is kind), None)

    def handled_by(self) -> set[int]:
        """Staff ids who have held this complaint: a review must go to someone else."""
        held = {
            e.data["staff_id"] for e in self.history
            if e.kind in (EventKind.ASSIGNED, EventKind.TRANSFERRED) and "staff_id" in e.data
        }
        # A supervisor who took it over by accepting, or resolved it without holding it, handled it
        # too, though no assignment event names them.
        held |= {
            e.actor_id for e in self.history
            if e.kind in (EventKind.ACCEPTED, EventKind.RESOLVED)
            and e.actor_kind is ActorKind.STAFF and e.actor_id is not None
        }
        return held

    # ---- staff verbs ----------------------------------------------------------------------
    def assign(self, staff_id: int, *, by: Actor, at: datetime, note: str | None = None,
               staff_role: str | None = None, accept_by: datetime | None = None,
               resolve_by: datetime | None = None, reason: str | None = None) -> None:
        """Hand the complaint to a staff member (routing, triage, or a supervisor's choice).

        A new holder gets a fresh accept window (``accept_by``); a review a fresh resolve window.
        """
        if not (by.is_system or by.is_supervisor or by.is_desk):
            raise PermissionDenied("只有客服、主管或系统可以分派投诉。")
        self._require(Status.SUBMITTED, Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW,
                      action="分派")
        previous = self.status
        self.assignee_id = staff_id
        self.accepted_at = None
        data: dict[str, Any] = {"staff_id": staff_id, "staff_role": staff_role}
        if reason:
            data["reason"] = reason
        if accept_by is not None:
            self.accept_by = accept_by
            data["accept_by"] = accept_by.isoformat()
        if resolve_by is not None:
            self.resolve_by = resolve_by
            data["resolve_by"] = resolve_by.isoformat()
        # A complaint under review stays under review until the new holder accepts it.
        new_status = Status.REVIEW if previous is Status.REVIEW else Status.ASSIGNED
        self.status = new_status
        self._record(EventKind.ASSIGNED, by, at, previous, new_status, note, data=data)

    def accept(self, *, by: Actor, at: datetime) -> None:
        if not (self.is_assignee(by) or by.is_supervisor):
            raise PermissionDenied("这件投诉没有分派给您,不能接单。")
        self._require(Status.ASSIGNED, Status.REVIEW, action="接单")
        previous = self.status
        if by.is_supervisor and not self.is_assignee(by):
            self.assignee_id = by.id
        self.status = Status.IN_PROGRESS
        self.accepted_at = at
        self._record(EventKind.ACCEPTED, by, at, previous, Status.IN_PROGRESS)

    def transfer(self, to_staff_id: int, *, by: Actor, at: datetime, note: str | None = None,
                 staff_role: str | None = None, accept_by: datetime | None = None) -> None:
        """转派: the holder (or a supervisor) passes it on; the new holder must accept again."""
        if not (self.is_assignee(by) or by.is_supervisor or by.is_desk):
            raise PermissionDenied("只有当前处理人或主管可以转派。")
        self._require(Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW, action="转派")
        if to_staff_id == self.assignee_id:
            raise InvalidTransition("不能转派给当前处理人本人。")
        previous = self.status
        from_staff = self.assignee_id
        self.assignee_id = to_staff_id
        self.accepted_at = None
        if accept_by is not None:
            self.accept_by = accept_by
        new_status = Status.REVIEW if previous is Status.REVIEW else Status.ASSIGNED
        self.status = new_status
        self._record(EventKind.TRANSFERRED, by, at, previous, new_status, note,
                     data={"staff_id": to_staff_id, "from_staff_id": from_staff, "staff_role": staff_role})

    def escalate(self, *, by: Actor, at: datetime, note: str | None = None,
                 reason: str = "manual", to_level: int | None = None) -> int:
        """服务上移: one level up (1 supervisor, 2 manager), or to ``to_level`` if that is higher
        (a missed deadline goes to the supervisor even if an angry resident already took it there).
        Returns the level whose people are told now."""
        if not (self.is_assignee(by) or by.is_supervisor or by.is_system or by.is_desk):
            raise PermissionDenied("只有当前处理人、主管或系统可以上报。")
        if not self.is_open:
            raise InvalidTransition(f"投诉{self.status.label},无需上报。")
        if to_level is not None:
            level = max(1, min(to_level, MAX_ESCALATION_LEVEL))
            self.escalation_level = max(self.escalation_level, level)
            self._record(EventKind.ESCALATED, by, at, self.status, self.status, note,
                         data={"level": level, "reason": reason})
            return level
        level = min(self.escalation_level + 1, MAX_ESCALATION_LEVEL)
        self.escalation_level = level
        self._record(EventKind.ESCALATED, by, at, self.status, self.status, note,
                     data={"level": level, "reason": reason})
        return level

    def reveal_contact(self, *, by: Actor, at: datetime) -> str | None:
        """联系业主: staff see the full number only through this, and every reveal is logged."""
        if not (self.is_assignee(by) or by.is_supervisor or by.is_desk):
            raise PermissionDenied("只有当前处理人或主管可以查看业主联系方式。")
        if self.anonymous or not self.contact.phone:
            raise InvalidTransition("这是匿名投诉,没有留下联系方式。")
        self._record(EventKind.CONTACT_REVEALED, by, at, self.status, self.status)
        return self.contact.phone

    def record_reminder(self, kind: str, *, at: datetime, staff_id: int | None) -> None:
        """A reminder went out: kept in the history so an audit shows who was told when."""
        self._record(EventKind.REMINDED, Actor.system(), at, self.status, self.status,
                     data={"kind": kind, "staff_id": staff_id})

    def comment_follow_up(self, comment: str, *, by: Actor, at: datetime) -> None:
        """The resident's words after rating: kept with the 回访, whatever the status now."""
        if not (self.is_owner(by) or by.is_desk or by.is_supervisor):
            raise PermissionDenied("只有投诉人本人可以补充评价。")
        if self.last_event(EventKind.FOLLOW_UP) is None:
            raise InvalidTransition("请先完成回访评价。")
        comment = comment.strip()
        if not comment:
            raise DomainError("评价内容不能为空。")
        self._record(EventKind.FOLLOW_UP, by, at, self.status, self.status, comment, data={"comment": True})

    def add_note(self, text: str, *, by: Actor, at: datetime) -> None:
        if by.kind is not ActorKind.STAFF:
            raise PermissionDenied("只有工作人员可以添加内部备注。")
        self._record(EventKind.NOTE, by, at, self.status, self.status, text)

    def delay(self, new_resolve_by: datetime, *, by: Actor, at: datetime, reason: str) -> None:
        """Cannot finish on time: the resident is told why and given the new date."""
        if not (self.is_assignee(by) or by.is_supervisor):
            raise PermissionDenied("只有当前处理人或主管可以延期。")
        self._require(Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW, action="延期")
        if not reason or not reason.strip():
            raise DomainError("延期需要说明原因,以便告知业主。")
        if new_resolve_by <= self.resolve_by:
            raise InvalidTransition("新的完成时间应晚于原定时间。")
        old = self.resolve_by
        self.resolve_by = new_resolve_by
        self._record(EventKind.DELAYED, by, at, self.status, self.status, reason.strip(),
                     data={"old_resolve_by": old.isoformat(), "resolve_by": new_resolve_by.isoformat()})

    def resolve(self, *, by: Actor, at: datetime, note: str | None = None,
                attachments: list[Attachment] | None = None) -> None:
        """处理完成: only the assignee or a supervisor; the resident is then asked for 回访.
        ``attachments``: photos of the finished work, kept with the complaint."""
        if not (self.is_assignee(by) or by.is_supervisor):
            raise PermissionDenied("只有当前处理人或主管可以标记处理完成。")
        self._require(Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW, action="处理完成")
        previous = self.status
        self.status = Status.RESOLVED
        self.resolved_at = at
        self.resolution = note
        self.attachments.extend(attachments or [])
        self._record(EventKind.RESOLVED, by, at, previous, Status.RESOLVED, note,
                     data={"attachments": len(attachments or [])})

    def refer_external(self, *, by: Actor, at: datetime, referral: str) -> None:
        """非物业职责: record who can help; the resident is told and it is followed up."""
        if not (self.is_assignee(by) or by.is_supervisor or by.is_desk):
            raise PermissionDenied("只有当前处理人或主管可以转外部。")
        self._require(Status.SUBMITTED, Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW,
                      action="转外部")
        if not referral or not referral.strip():
            raise DomainError("请说明业主可以向哪个单位求助。")
        previous = self.status
        self.status = Status.EXTERNAL
        self.external_referral = referral.strip()
        self._record(EventKind.EXTERNAL, by, at, previous, Status.EXTERNAL, referral.strip())

    def close(self, *, by: Actor, at: datetime, note: str | None = None) -> None:
        """结案 after 回访, after an external referral, or automatically after 7 silent days."""
        if not (by.is_system or by.is_supervisor or by.is_desk):
            raise PermissionDenied("只有客服、主管或系统可以结案。")
        self._require(Status.RESOLVED, Status.EXTERNAL, action="结案")
        previous = self.status
        self.status = Status.CLOSED
        self.closed_at = at
        self._record(EventKind.CLOSED, by, at, previous, Status.CLOSED, note)

    # ---- resident verbs -------------------------------------------------------------------
    def withdraw(self, *, by: Actor, at: datetime, note: str | None = None) -> None:
        if not self.is_owner(by):
            raise PermissionDenied("只有投诉人本人可以撤销投诉。")
        self._require(Status.SUBMITTED, Status.ASSIGNED, Status.IN_PROGRESS, Status.REVIEW,
                      action="撤销")
        previous = self.status
        self.status = Status.WITHDRAWN
        self.closed_at = at
        self._record(EventKind.WITHDRAWN, by, at, previous, Status.WITHDRAWN, note)

    def add_info(self, *, by: Actor, at: datetime, text: str | None = None,
                 attachments: list[Attachment] | None = None) -> None:
        if not (self.is_owner(by) or by.is_desk or by.is_supervisor):
            raise PermissionDenied("只有投诉人本人可以补充信息。")
        if not self.is_open:
            raise InvalidTransition(f"投诉{self.status.label},不能再补充信息。")
        text = (text or "").strip() or None
        if not text and not attachments:
            raise DomainError("请补充文字或照片。")
        self.attachments.extend(attachments or [])
        self._record(EventKind.INFO_ADDED, by, at, self.status, self.status, text,
                     data={"attachments": len(attachments or [])})

    def follow_up(self, *, by: Actor, at: datetime, solved: bool, rating: int | None = None,
                  comment: str | None = None) -> Status:
        """回访: solved and rated 3+ closes; not solved or ≤ 2 stars goes to 复核."""
        if not (self.is_owner(by) or by.is_desk or by.is_supervisor):
            raise PermissionDenied("只有投诉人本人可以评价。")
        self._require(Status.RESOLVED, action="回访")
        if rating is not None and not 1 <= rating <= 5:
            raise DomainError("评分请选择 1 到 5 星。")
        self.satisfied = solved
        self.rating = rating
        self._record(EventKind.FOLLOW_UP, by, at, Status.RESOLVED, Status.RESOLVED, comment,
                     data={"solved": solved, "rating": rating})
        if not solved or (rating is not None and rating <= 2):
            self._enter_review(by, at, "回访不满意" if solved else "业主反馈未解决")
        else:
            self.status = Status.CLOSED
            self.closed_at = at
            self._record(EventKind.CLOSED, by, at, Status.RESOLVED, Status.CLOSED, "回访满意,结案")
        return self.status

    def reopen(self, *, by: Actor, at: datetime, note: str | None = None) -> None:
        """复核 on request: a resolved or recently closed complaint goes back to a supervisor."""
        if not (self.is_owner(by) or by.is_supervisor or by.is_desk):
            raise PermissionDenied("只有投诉人本人或主管可以申请复核。")
        self._require(Status.RESOLVED, Status.CLOSED, action="申请复核")
        if self.status is Status.CLOSED and self.closed_at and at - self.closed_at > REOPEN_WINDOW:
            raise InvalidTransition("结案已超过30天,不能再申请复核,请提交新的投诉。")
        self._enter_review(by, at, note or "申请复核")

    def anonymise(self, *, at: datetime) -> None:
        """个人信息保护: drop the resident's personal data; statistics keep the complaint."""
        self.contact = Contact()
        self.anonymous = True
        self.resident_id = None
        self.location = replace(self.location, text=None, room=None)
        self.text = "(内容已应业主要求删除)"
        self.attachments = []
        self._record(EventKind.ANONYMISED, Actor.system(), at, self.status, self.status)

    # ---- internals --------------------------------------------------------------------------
    def _enter_review(self, by: Actor, at: datetime, note: str) -> None:
        previous = self.status
        self.status = Status.REVIEW
        self.assignee_id = None
        self.accepted_at = None
        self.closed_at = None
        self.resolved_at = None
        self._record(EventKind.REVIEW, by, at, previous, Status.REVIEW, note)

    def _require(self, *allowed: Status, action: str) -> None:
        if self.status not in allowed:
            raise InvalidTransition(f"投诉当前状态为「{self.status.label}」,不能{action}。")

    def _record(self, kind: EventKind, by: Actor, at: datetime, from_status: Status | None,
                to_status: Status | None, note: str | None = None,
                data: dict[str, Any] | None = None) -> ComplaintEvent:
        event = ComplaintEvent(
            kind=kind, at=at, actor_kind=by.kind, actor_id=by.id,
            actor_role=str(by.role) if by.role else None,
            from_status=from_status, to_status=to_status, note=note, data=dict(data or {}),
        )
        self.history.append(event)
        self.pending_events.append(event)
        return event


def format_number(day: date, sequence: int) -> str:
    """``TS20261127-0003``: the day's date and the day's sequence, at least four digits."""
    return f"TS{day:%Y%m%d}-{sequence:04d}"
