"""Authorisation matrix: every actor × every command and every kind of button, with callback data
forged or copied from another chat. Only what SPEC.md allows succeeds; everything else leaves
the complaint as it was and shows nothing of it (text, name, phone) to whoever pressed.

Actors: the resident who filed the complaint (owner), another resident, a stranger who never
pressed /start, the assignee (maintenance), staff of the other roles (environment, security),
the service desk (客服), a supervisor and a manager.
"""

from __future__ import annotations

from typing import Any

from complaints.model import Contact, Location, Status
from complaints.services import NewComplaint
from dialogs import texts
from dialogs.follow_up import FollowUpAction
from dialogs.keyboards import ComplaintAction, DraftAction
from dialogs.privacy import PrivacyAction
from dialogs.staff import StaffPick
from dialogs.staff_views import StaffAction
from tests.resident_support import no_api_errors  # noqa: F401 - the Bot API refused nothing

PHONE, NAME, WORDS = "13812345678", "张三", "楼道灯坏了晚上很黑"
SECRETS = (PHONE, "138****5678", NAME, WORDS)  # what someone without a right must never see
STAFF = {"assignee": (801, "王师傅", "maintenance"), "environment": (802, "李阿姨", "environment"),
         "security": (803, "周队长", "security"), "desk": (804, "小陈", "service"),
         "supervisor": (805, "赵主任", "supervisor"), "manager": (806, "钱经理", "manager")}
RESIDENTS = {"owner": (1001, NAME), "other": (1002, "李四"), "stranger": (1099, "路人")}
ACTORS = [*RESIDENTS, *STAFF]
DESK_UP = {"assignee", "desk", "supervisor", "manager"}  # may see and act on the complaint
BOSSES = {"supervisor", "manager"}
REFUSALS = {texts.NOT_YOURS, texts.STALE_BUTTON, "这件投诉没有分派给您。", "只有主管可以直接接手投诉。"}
# The domain's own polite refusals (PermissionDenied, InvalidTransition) start like these.
DOMAIN_REFUSALS = ("这件投诉没有分派给您", "只有", "投诉当前状态", "这条回访")

# Who may press each staff button on someone else's complaint (complaints/model.py, SPEC.md).
STAFF_BUTTONS = {"accept": {"assignee", *BOSSES}, "contact": DESK_UP, "transfer": DESK_UP,
                 "escalate": DESK_UP, "delay": DESK_UP, "resolve": DESK_UP, "external": DESK_UP,
                 "open": DESK_UP, "take": BOSSES}
RESIDENT_BUTTONS = ("open", "add", "add_done", "withdraw", "withdraw_yes")
FOLLOW_UP_BUTTONS = (("solved", 0), ("unsolved", 0), ("rate", 4), ("skip", 0))


class World:
    def __init__(self, desk: Any) -> None:
        self.desk, self.app = desk, desk.app
        self.users: dict[str, Any] = {}
        self.staff: dict[str, Any] = {}

    async def setup(self) -> None:
        # No deliveries: only what a press itself answers is looked at (an assignment card sent to
        # the new holder after a permitted transfer is no leak).
        await self.desk.background.stop()
        for key, (tid, name, role) in STAFF.items():
            self.staff[key], self.users[key] = await self.desk.staff(tid, name, role)
        for key, (tid, name) in RESIDENTS.items():
            self.users[key] = self.desk.user(tid, name)
            if key != "stranger":
                await self.users[key].start()
                await self.users[key].wait_for(lambda m: "欢迎" in m.text)
        self.owner = await self.app.roster.resident_for_telegram(1001, NAME)

    async def complaint(self, *, resolved: bool = False) -> str:
        c = await self.app.complaints.submit(NewComplaint(
            text=f"5栋3单元{WORDS}", category="maintenance", urgency="general",
            location=Location(building="5", unit="3", room="801"), contact=Contact(NAME, PHONE),
            resident_id=self.owner.id), by=self.owner.as_actor())
        assert c.assignee_id == self.staff["assignee"].id
        if resolved:
            actor = self.staff["assignee"].as_actor()
            await self.app.complaints.act(c.number, "accept", by=actor)
            await self.app.complaints.act(c.number, "resolve", by=actor, note="已更换灯泡")
        return c.number

    async def state(self, number: str) -> tuple[Any, ...]:
        c = await self.app.complaints.get(number)
        return c.status, c.assignee_id, len(c.history), c.escalation_level, c.resident_id

    async def press(self, actor: str, data: str) -> tuple[str, list[str]]:
        """Press forged ``data`` on the newest message of the actor's own chat; returns the
        callback answer and every message the bot sent them meanwhile."""
        user = self.users[actor]
        before = len(user.bot_messages)
        target = user.bot_messages[-1].message_id if user.bot_messages else 1
        answer = await user.press_callback(target, data, timeout=10)
        await user.press_callback(target, "zz:flush", timeout=10)  # one user's updates run in order
        return answer.text or "", [m.text or m.caption or "" for m in user.bot_messages[before:]]

    async def send(self, actor: str, command: str) -> list[str]:
        user = self.users[actor]
        before = len(user.bot_messages)
        await user.send_text(command)
        await user.press_callback(1, "zz:flush", timeout=20)
        return [m.text or m.caption or "" for m in user.bot_messages[before:]] + [
            self.desk.emu.files[m.document["file_id"]].data.decode() for m in user.bot_messages[before:]
            if m.document and m.document.get("file_name", "").endswith(".json")]


def _leaks(actor: str, said: list[str], number: str | None = None) -> list[str]:
    shown = "\n".join(said)
    return [s for s in (*SECRETS, *([number] if number else [])) if s in shown]


async def test_every_actor_times_every_button(desk: Any) -> None:
    w = World(desk)
    await w.setup()
    failures: list[str] = []
    cases: list[tuple[str, str, Any, set[str], bool]] = []  # (label, actor, data builder, allowed, resolved)
    for action in RESIDENT_BUTTONS:
        cases.append((f"c:{action}", "", lambda n, a=action: ComplaintAction(action=a, number=n).pack(),
                      {"owner"}, False))
    for action, allowed in STAFF_BUTTONS.items():
        cases.append((f"s:{action}", "", lambda n, a=action: StaffAction(action=a, number=n).pack(), allowed, False))
    env_id = STAFF["environment"][0]
    cases.append(("sp:pick", "", lambda n: StaffPick(action=str(w.staff["environment"].id), number=n).pack(),
                  BOSSES, False))
    for action, value in FOLLOW_UP_BUTTONS:
        cases.append((f"f:{action}", "", lambda n, a=action, v=value: FollowUpAction(action=a, number=n, value=v).pack(),
                      {"owner"}, True))
    cases.append(("pv:forget_yes(owner's)", "", lambda n: PrivacyAction(action="forget_yes", user=1001).pack(),
                  set(), False))
    cases.append(("s:bogus", "", lambda n: StaffAction(action="delete_all", number=n).pack(), set(), False))
    assert env_id

    numbers: dict[bool, str] = {}
    for label, _, build, allowed, resolved in cases:
        for actor in ACTORS:
            if label.startswith("pv:") and actor == "owner":
                continue  # the owner's own /forget is theirs to press (tests/test_privacy.py)
            if resolved not in numbers:
                numbers[resolved] = await w.complaint(resolved=resolved)
            number = numbers[resolved]
            before = await w.state(number)
            answer, said = await w.press(actor, build(number))
            after = await w.state(number)
            where = f"{actor} pressed {label}"
            if actor in allowed:
                if answer in REFUSALS:
                    failures.append(f"{where}: refused ({answer})")
            else:
                if after != before:
                    failures.append(f"{where}: the complaint changed {before} → {after}")
                if answer not in REFUSALS and not answer.startswith(DOMAIN_REFUSALS):
                    failures.append(f"{where}: answered {answer!r}")
                if leaked := _leaks(actor, [answer, *said]):
                    failures.append(f"{where}: saw {leaked}")
            if after != before:
                numbers.pop(resolved)  # the next case starts from a fresh complaint

    # A draft card's 提交 copied into other chats files nothing; the owner's own press does.
    owner = w.users["owner"]
    await owner.send_text("/cancel")  # whatever the presses above left the owner in
    await owner.wait_for(lambda m: "取消" in m.text or "没有正在填写" in m.text)
    await owner.send_text("3号楼门口的路灯不亮了")
    await owner.wait_for(lambda m: "联系方式" in m.text)
    await owner.send_text(PHONE)
    card = await owner.wait_for(lambda m: "请确认您的投诉" in m.text)
    submit = next(b["callback_data"] for row in card.inline_keyboard for b in row if b["text"] == "✅ 提交")
    assert DraftAction.unpack(submit).action == "submit"
    count = len(await desk.app.complaints.list())
    for actor in ACTORS[1:]:
        answer, said = await w.press(actor, submit)
        if answer != texts.STALE_BUTTON or _leaks(actor, said) or len(await desk.app.complaints.list()) != count:
            failures.append(f"{actor} pressed the owner's 提交: {answer!r} {said}")
    await owner.press(card, "✅ 提交")
    await owner.wait_for(lambda m: "投诉编号" in m.text)
    assert len(await desk.app.complaints.list()) == count + 1
    assert not failures, "\n".join(failures)


COMMANDS = ("/start", "/help", "/my", "/cancel", "/tasks", "/queue", "/overdue", "/stats", "/join", "/mydata",
            "/forget")


def _expected(actor: str, command: str) -> str:
    """A fragment the answer must contain."""
    staff, boss = actor in STAFF, actor in BOSSES
    return {
        "/start": "您好" if staff else "欢迎",
        "/help": "员工使用说明" if staff else "使用帮助",
        "/my": "我的投诉" if actor == "owner" else "还没有投诉记录",
        "/cancel": "当前没有正在填写的内容",
        "/tasks": ("我的待办" if actor == "assignee" else "没有待办") if staff else "仅供物业工作人员使用",
        "/queue": "全部未结投诉" if boss else ("仅限客服主任和经理" if staff else "仅供物业工作人员使用"),
        "/overdue": "逾期汇总" if boss else ("仅限客服主任和经理" if staff else "仅供物业工作人员使用"),
        "/stats": "统计" if boss else ("仅限客服主任和经理" if staff else "仅供物业工作人员使用"),
        "/join": "请发送 /join 加邀请码",
        "/mydata": "全部信息",  # everyone who wrote to the bot is on record by now (/start, /my)
        "/forget": "确定要删除",
    }[command]


async def test_every_actor_times_every_command(desk: Any) -> None:
    w = World(desk)
    await w.setup()
    number = await w.complaint()
    before = await w.state(number)
    may_see = {"owner", *DESK_UP} - {"desk"}  # the desk has no tasks of its own; bosses see the queue
    failures: list[str] = []
    for command in COMMANDS:
        for actor in ACTORS:
            said = await w.send(actor, command)
            shown = "\n".join(said)
            if _expected(actor, command) not in shown:
                failures.append(f"{actor} {command}: expected {_expected(actor, command)!r}, got {said}")
            entitled = actor == "owner" or (actor in may_see and command in ("/tasks", "/queue", "/overdue"))
            if not entitled and (leaked := _leaks(actor, said, number)):
                failures.append(f"{actor} {command}: saw {leaked}")
            if actor != "owner" and (PHONE in shown or NAME in shown):
                failures.append(f"{actor} {command}: saw the owner's phone or name")
    assert await w.state(number) == before, "a command changed the complaint"
    assert (await desk.app.complaints.get(number)).status is Status.ASSIGNED
    assert not failures, "\n".join(failures)
