"""Who may use the staff side: invites, roles, and buttons pressed by the wrong person."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.cli import _parser, _staff_invite
from complaints.model import EventKind, Role, Status
from dialogs.staff import NOT_STAFF, SUPERVISORS_ONLY
from dialogs.staff_views import StaffAction
from dialogs.texts import STALE_BUTTON
from tests.staff_helpers import PHONE, fast_desk, file, resident  # noqa: F401  (fast_desk: the ``desk`` fixture)


async def test_invite_code_from_the_shell_makes_a_staff_member(desk, clock, capsys) -> None:
    args = _parser().parse_args(["staff", "invite", "--role", "maintenance", "--json"])
    assert await _staff_invite(desk.app, args) == 0
    code = json.loads(capsys.readouterr().out)["code"]

    newcomer = desk.user(801, "新来的小李")
    await newcomer.start()  # not on the roster yet: the resident welcome
    await newcomer.wait_for(lambda m: "欢迎" in m.text)
    await newcomer.send_command("tasks")
    assert (await newcomer.wait_for_message()).text == NOT_STAFF
    await newcomer.send_command("join", "NOTACODE")
    await newcomer.wait_for(lambda m: "邀请码无效或已过期" in m.text)
    await newcomer.send_command("join", code.lower())
    welcome = await newcomer.wait_for(lambda m: "欢迎加入" in m.text)
    assert "工程维修" in welcome.text
    member = await desk.app.roster.staff_by_telegram(801)
    assert member is not None and member.role is Role.MAINTENANCE

    # One-time: a second person cannot use it.
    other = desk.user(802, "小王")
    await other.start()
    await other.wait_for(lambda m: "欢迎" in m.text)
    await other.send_command("join", code)
    await other.wait_for(lambda m: "邀请码无效或已过期" in m.text)

    # Valid 7 days.
    late = await desk.app.roster.create_invite("security")
    clock.advance(timedelta(days=7, minutes=1))
    await other.send_command("join", late)
    await other.wait_for(lambda m: "邀请码无效或已过期" in m.text)
    assert await desk.app.roster.staff_by_telegram(802) is None

    # The new member gets work at once and sees it in /tasks.
    owner = await resident(desk, 1101, "业主甲")
    number = await file(desk, owner)
    await newcomer.wait_for(lambda m: number in m.text and "新投诉" in m.text)
    await newcomer.send_command("tasks")
    tasks = await newcomer.wait_for(lambda m: "我的待办" in m.text)
    assert number in tasks.text


async def test_tasks_sorted_by_deadline_and_role_commands(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    owner = await resident(desk, 1102, "业主乙")
    general = await file(desk, owner, "楼道灯不亮")
    emergency = await file(desk, owner, "电梯困人了", urgency="emergency")
    important = await file(desk, owner, "车库顶渗水好几次了", urgency="important")
    for number in (general, emergency, important):  # cards are delivered by the outbox, in their own time
        await worker.wait_for(lambda m, n=number: n in m.text and "接单时限" in m.text, timeout=10)
    await worker.send_command("tasks")
    tasks = await worker.wait_for(lambda m: "我的待办" in m.text, timeout=10)
    order = [tasks.text.index(n) for n in (emergency, general, important)]
    assert order == sorted(order), tasks.text
    assert PHONE not in tasks.text

    await worker.send_command("queue")
    await worker.wait_for(lambda m: m.text == SUPERVISORS_ONLY, timeout=10)
    await worker.send_command("overdue")
    await worker.wait_for(lambda m: m.text == SUPERVISORS_ONLY, timeout=10)


async def test_staff_buttons_pressed_by_others_give_nothing(desk) -> None:
    _, worker = await desk.staff(501, "王师傅", "maintenance")
    _, colleague = await desk.staff(502, "刘师傅", "security")
    owner = await resident(desk, 1103, "业主丙")
    number = await file(desk, owner)
    await worker.wait_for(lambda m: number in m.text)
    before = await desk.app.complaints.get(number)

    # A resident forging staff buttons on a message of their own chat.
    anchor = owner.last_message
    seen = len(owner.bot_messages)
    for action in ("accept", "contact", "open", "resolve", "take", "transfer"):
        answer = await owner.press_callback(anchor.message_id, StaffAction(action=action, number=number).pack())
        assert answer.text == STALE_BUTTON and number not in (answer.text or "")
    # A colleague of another team forging them too: a refusal, no card, no phone.
    anchor = colleague.last_message
    seen_colleague = len(colleague.bot_messages)
    for action in ("open", "contact", "accept", "delay"):
        answer = await colleague.press_callback(anchor.message_id, StaffAction(action=action, number=number).pack())
        assert "没有分派给您" in answer.text
    after = await desk.app.complaints.get(number)
    assert after.status is Status.ASSIGNED and after.assignee_id == before.assignee_id
    assert len(after.history) == len(before.history)
    assert not [e for e in after.history if e.kind is EventKind.CONTACT_REVEALED]
    await owner.expect_no_message(0.1)
    assert len(owner.bot_messages) == seen and len(colleague.bot_messages) == seen_colleague
    assert all(PHONE not in m.text for m in colleague.bot_messages + owner.bot_messages)
