"""The sandbox's people and (with ``--demo``) example complaints in every state.

Everything goes through the same services the bot uses, so the demo data carries the same
events, timers and outbox messages as real work: staff chats fill with real assignment cards.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from complaints.model import ROLE_LABELS, Actor, ActorKind, Channel, Contact, DomainError, Location, Role
from complaints.people import Resident
from complaints.services import NewComplaint

if TYPE_CHECKING:
    from bot.container import App

logger = logging.getLogger(__name__)

RESIDENT_COMMANDS = (("/start", "主菜单"), ("/my", "我的投诉"), ("/help", "帮助"), ("/cancel", "取消填写"))
STAFF_COMMANDS = (("/tasks", "我的待办"), ("/help", "使用说明"), ("/cancel", "取消"))
SUPERVISOR_COMMANDS = (("/queue", "全部未结投诉"), ("/tasks", "我的待办"), ("/overdue", "超时汇总"),
                       ("/help", "使用说明"))
MANAGER_COMMANDS = (("/overdue", "超时汇总"), ("/stats", "月度统计(含 Excel)"), ("/queue", "全部未结投诉"),
                    ("/help", "使用说明"))


@dataclass(frozen=True)
class Person:
    """One chat in the page: a Telegram user talking to the bot."""

    telegram_id: int
    name: str
    role: str  # "resident" or a staff Role value
    hint: str  # one line under the name: what this person does in the walkthrough
    commands: tuple[tuple[str, str], ...] = field(default=STAFF_COMMANDS)

    @property
    def role_label(self) -> str:
        return "业主" if self.role == "resident" else ROLE_LABELS[Role(self.role)]

    @property
    def is_staff(self) -> bool:
        return self.role != "resident"


CAST: tuple[Person, ...] = (
    Person(1001, "张先生", "resident", "3栋业主:发送文字描述问题即可投诉", RESIDENT_COMMANDS),
    Person(2001, "王师傅", "maintenance", "工程维修:电梯、水电、照明、门窗"),
    Person(2002, "李阿姨", "environment", "保洁绿化:垃圾、卫生、绿化、噪音"),
    Person(2003, "赵队长", "security", "秩序维护:门禁、停车、巡逻、消防"),
    Person(2004, "陈小姐", "service", "客服:其他类投诉的人工分派"),
    Person(2005, "刘主任", "supervisor", "客服主任:服务上移、复核、改派", SUPERVISOR_COMMANDS),
    Person(2006, "孙经理", "manager", "经理:每日 09:00 逾期汇总、月度统计", MANAGER_COMMANDS),
)
RESIDENT = CAST[0]


async def seed_roster(app: App) -> int:
    """Put the cast's staff on the roster; people already there are left as they are."""
    added = 0
    for person in CAST:
        if not person.is_staff:
            continue
        if await app.roster.staff_by_telegram(person.telegram_id) is not None:
            continue
        await app.roster.add_staff(telegram_id=person.telegram_id, name=person.name, role=person.role)
        added += 1
    return added


async def has_complaints(app: App) -> bool:
    return bool(await app.complaints.list(limit=1))


# ---- --demo ---------------------------------------------------------------------------------------
_DESK = Actor(ActorKind.SYSTEM, name="客服台")


async def _submit(app: App, resident: Resident, text: str, category: str, location: Location,
                  urgency: str = "general") -> str:
    new = NewComplaint(text=text, category=category, urgency=urgency, channel=Channel.PHONE,
                       location=location, contact=Contact(resident.name, resident.phone),
                       resident_id=resident.id)
    complaint = await app.complaints.submit(new, by=_DESK)
    return complaint.number


async def demo_before_roster(app: App) -> str:
    """受理 (not yet assigned) only exists while nobody on the roster can take a complaint."""
    resident = await app.roster.resident_for_phone("13900000001", "周女士")
    return await _submit(app, resident, "想咨询一下物业费能否按季度缴纳,发票怎么开", "other",
                         Location(area="物业服务中心"))


async def demo_complaints(app: App) -> dict[str, str]:
    """One example complaint per state (besides 受理): number by state, for the log."""
    made: dict[str, str] = {}

    async def staff_actor(telegram_id: int) -> Actor:
        staff = await app.roster.staff_by_telegram(telegram_id)
        if staff is None:
            raise DomainError(f"sandbox roster lacks {telegram_id}")
        return staff.as_actor()

    wang, li, zhao, chen = [await staff_actor(i) for i in (2001, 2002, 2003, 2004)]
    ma = await app.roster.resident_for_phone("13900000002", "马先生")
    wu = await app.roster.resident_for_phone("13900000003", "吴女士")
    he = await app.roster.resident_for_phone("13900000004", "何先生")
    zheng = await app.roster.resident_for_phone("13900000005", "郑先生")

    made["assigned"] = await _submit(app, ma, "5栋1单元电梯按钮失灵,按了没反应", "maintenance",
                                     Location("5", "1", None, None, "5栋1单元"))
    number = await _submit(app, wu, "中心花园的垃圾桶满了两天没人清,有异味", "environment",
                           Location(area="中心花园"))
    await app.complaints.act(number, "accept", by=li)
    made["in_progress"] = number

    number = await _submit(app, he, "北门道闸坏了,车辆进出要排很久", "security", Location(area="北门"))
    await app.complaints.act(number, "accept", by=zhao)
    await app.complaints.act(number, "resolve", by=zhao, note="已更换道闸控制板,恢复正常")
    made["resolved"] = number

    number = await _submit(app, zheng, "2栋3单元楼道灯不亮", "maintenance", Location("2", "3", None, None, "2栋3单元"))
    await app.complaints.act(number, "accept", by=wang)
    await app.complaints.act(number, "resolve", by=wang, note="已更换灯泡")
    await app.complaints.follow_up(number, by=zheng.as_actor(), solved=True, rating=5)
    made["closed"] = number

    number = await _submit(app, wu, "地下车库B区墙面渗水,地面积水", "maintenance", Location(area="地下车库"))
    await app.complaints.act(number, "accept", by=wang)
    await app.complaints.act(number, "resolve", by=wang, note="已清理积水")
    await app.complaints.follow_up(number, by=wu.as_actor(), solved=False)
    made["review"] = number

    number = await _submit(app, he, "小区门口市政道路的路灯不亮", "other", Location(area="南门"))
    await app.complaints.act(number, "accept", by=chen)
    await app.complaints.act(number, "external", by=chen, note="市政路灯管理所,电话 12345")
    made["external"] = number

    number = await _submit(app, ma, "楼上周末装修太吵", "environment", Location("5", "1", "1202", None, "5栋1单元1202"))
    await app.complaints.act(number, "withdraw", by=ma.as_actor(), note="已和邻居沟通好")
    made["withdrawn"] = number
    return made


# ---- a sample photo the page can send without a file at hand ------------------------------------
def sample_photo(width: int = 480, height: int = 320) -> bytes:
    """A small PNG that looks like something (a lit corridor with a dark lamp), made without Pillow."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            if abs(x - width // 2) < 40 and 30 < y < 60:  # the lamp
                rgb = (70, 70, 80)
            elif y > height * 2 // 3:  # floor
                shade = 120 + (y - height * 2 // 3) // 3
                rgb = (shade, shade - 20, shade - 45)
            else:  # wall, darker towards the ceiling
                shade = 150 + y * 80 // height
                rgb = (shade, shade, shade - 10)
            row += bytes(rgb)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
            + chunk(b"IEND", b""))
