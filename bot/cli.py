"""The ``wuye`` command line: run the bot, manage the roster, register and act on complaints.

Exit codes: 0 success, 2 usage error, 1 failure. Heavy imports happen inside the commands, so
``wuye classify`` starts without loading aiogram or SQLAlchemy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import date, datetime
from typing import Any

ROLES = ("maintenance", "environment", "security", "service", "supervisor", "manager")
URGENCIES = ("emergency", "important", "general")
STATUSES = ("submitted", "assigned", "in_progress", "resolved", "closed", "withdrawn", "external", "review")
ACTIONS = ("accept", "resolve", "escalate", "transfer", "close", "withdraw", "reopen", "external")
ACTION_LABELS = {"accept": "接单", "resolve": "处理完成", "escalate": "上报", "transfer": "转派", "close": "结案",
                 "withdraw": "撤销", "reopen": "复核", "external": "转外部"}


class UsageError(Exception):
    """Bad arguments that argparse cannot see (a malformed date, say): exit 2."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wuye", description="物业投诉机器人 wuye")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="运行机器人(无 BOT_TOKEN 时启动本地沙盒)")
    run.add_argument("--webhook", action="store_true", help="通过 HTTP webhook 接收更新")
    run.add_argument("--demo", action="store_true", help="沙盒中加入示例投诉")

    sub.add_parser("classify", help="从标准输入逐行分类投诉文本,输出 JSON 行", add_help=False)

    staff = sub.add_parser("staff", help="员工名册").add_subparsers(dest="staff_command", required=True)
    add = staff.add_parser("add", help="添加员工")
    add.add_argument("--telegram-id", type=int, required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--phone")
    ls = staff.add_parser("list", help="列出员工")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--active", action="store_true", help="只列出在职员工")
    rm = staff.add_parser("remove", help="停用员工(保留历史)")
    rm.add_argument("telegram_id", type=int, metavar="ID")
    inv = staff.add_parser("invite", help="生成一次性邀请码(7天内有效),员工发送 /join 邀请码 加入")
    inv.add_argument("--role", required=True, choices=ROLES)
    inv.add_argument("--name", help="员工姓名(可选)")
    inv.add_argument("--json", action="store_true")

    comp = sub.add_parser("complaints", help="投诉").add_subparsers(dest="complaints_command", required=True)
    submit = comp.add_parser("submit", help="登记来电/来访投诉")
    submit.add_argument("--text", required=True)
    submit.add_argument("--channel", choices=("phone", "visit"), default="phone")
    submit.add_argument("--name")
    submit.add_argument("--phone")
    submit.add_argument("--location")
    submit.add_argument("--category")
    submit.add_argument("--urgency", choices=URGENCIES)
    submit.add_argument("--json", action="store_true")
    lst = comp.add_parser("list", help="列出投诉")
    lst.add_argument("--status", choices=STATUSES)
    lst.add_argument("--overdue", action="store_true")
    lst.add_argument("--json", action="store_true")
    show = comp.add_parser("show", help="查看投诉及完整处理记录")
    show.add_argument("number")
    show.add_argument("--json", action="store_true")
    act = comp.add_parser("act", help="对投诉执行操作")
    act.add_argument("number")
    act.add_argument("action", choices=ACTIONS)
    act.add_argument("--by", type=int, required=True, metavar="TELEGRAM_ID")
    act.add_argument("--note")
    act.add_argument("--to", type=int, metavar="TELEGRAM_ID", help="转派给谁(transfer)")
    act.add_argument("--json", action="store_true")

    sla = sub.add_parser("sla", help="时限").add_subparsers(dest="sla_command", required=True)
    dl = sla.add_parser("deadlines", help="计算接单和处理时限")
    dl.add_argument("--urgency", required=True, choices=URGENCIES)
    dl.add_argument("--at", required=True, metavar='"YYYY-MM-DD HH:MM"')
    dl.add_argument("--json", action="store_true")

    cal = sub.add_parser("calendar", help="工作日历").add_subparsers(dest="calendar_command", required=True)
    cset = cal.add_parser("set", help="设置某天为工作日或休息日")
    cset.add_argument("day", metavar="YYYY-MM-DD")
    cset.add_argument("kind", choices=("workday", "holiday"))
    cset.add_argument("--note")
    cshow = cal.add_parser("show", help="显示某月日历")
    cshow.add_argument("month", metavar="YYYY-MM")
    cshow.add_argument("--json", action="store_true")

    rep = sub.add_parser("report", help="报表").add_subparsers(dest="report_command", required=True)
    rep.add_parser("daily", help="打印每日超时汇总")
    monthly = rep.add_parser("monthly", help="月度《顾客投诉分类统计表》")
    monthly.add_argument("--month", metavar="YYYY-MM", help="默认上个月")
    monthly.add_argument("--xlsx", metavar="FILE", help="保存 Excel 文件")
    monthly.add_argument("--png", metavar="FILE", help="保存统计图 PNG")

    dbp = sub.add_parser("db", help="数据库").add_subparsers(dest="db_command", required=True)
    dbp.add_parser("upgrade", help="创建或升级数据库结构")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list and args_list[0] == "classify":
        from intents.cli import main as classify_main  # lazy: no aiogram, no SQLAlchemy

        return classify_main(args_list[1:])
    try:
        args = _parser().parse_args(args_list)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    try:
        return _dispatch(args)
    except UsageError as exc:
        print(f"wuye: 参数错误:{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `wuye … | head`: the reader left, nothing more to say
        return 0
    except Exception as exc:  # a person reads this, not a traceback
        print(f"wuye: {_describe_failure(exc)}", file=sys.stderr)
        return 1


def _describe_failure(exc: Exception) -> str:
    from complaints.model import DomainError

    if isinstance(exc, DomainError):
        return str(exc)
    try:
        from sqlalchemy.exc import DBAPIError, OperationalError
    except ImportError:  # pragma: no cover
        return f"{type(exc).__name__}: {exc}"
    if isinstance(exc, (OperationalError, DBAPIError, ConnectionError, OSError)):
        return f"数据库无法访问,请检查 DATABASE_URL 和数据库服务:{str(exc).splitlines()[0]}"
    return f"操作失败({type(exc).__name__}):{exc}"


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        from bot.runner import run_command

        return run_command(webhook=args.webhook, demo=args.demo)
    if args.command == "sla":
        return _sla_deadlines(args)
    handlers: dict[tuple[str, str], Callable[[Any, argparse.Namespace], Coroutine[Any, Any, int]]] = {
        ("staff", "add"): _staff_add, ("staff", "list"): _staff_list, ("staff", "remove"): _staff_remove,
        ("complaints", "submit"): _complaints_submit, ("complaints", "list"): _complaints_list,
        ("complaints", "show"): _complaints_show, ("complaints", "act"): _complaints_act,
        ("calendar", "set"): _calendar_set, ("calendar", "show"): _calendar_show,
        ("db", "upgrade"): _db_upgrade, ("staff", "invite"): _staff_invite,
        ("report", "daily"): _report_daily, ("report", "monthly"): _report_monthly,
    }
    sub = getattr(args, f"{args.command}_command")
    return asyncio.run(_with_app(handlers[(args.command, sub)], args))


class _LazyNotifications:
    """The bot's event sink (``notifier.events.Notifications``), imported on first use.

    The notifier builds Telegram payloads with aiogram, whose import takes seconds. Most commands,
    and every refused action, never queue a message, so they should not pay for it; a submit or an
    action that succeeds still queues exactly what the bot would.
    """

    def __init__(self) -> None:
        self.policy: Any = None  # set by App.reload_calendar(), like the real sink's
        self._sink: Any = None

    async def __call__(self, uow: Any, complaint: Any) -> None:
        if self._sink is None:
            from notifier.events import Notifications

            self._sink = Notifications(self.policy)
        self._sink.policy = self.policy
        await self._sink(uow, complaint)


async def _build_app() -> Any:
    from bot.container import build_app

    return await build_app(sink=_LazyNotifications())


async def _with_app(handler: Callable[[Any, argparse.Namespace], Coroutine[Any, Any, int]],
                    args: argparse.Namespace) -> int:
    app = await _build_app()
    try:
        return await handler(app, args)
    finally:
        await app.close()


def _print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


# ---- staff -------------------------------------------------------------------------------------
async def _staff_add(app: Any, args: argparse.Namespace) -> int:
    staff = await app.roster.add_staff(telegram_id=args.telegram_id, name=args.name, role=args.role,
                                       phone=args.phone)
    print(f"已添加员工 {staff.name}({staff.role_label}),Telegram ID {staff.telegram_id}。")
    return 0


async def _staff_list(app: Any, args: argparse.Namespace) -> int:
    staff = await app.roster.list_staff(active_only=args.active)
    if args.json:
        _print_json([{"id": s.id, "telegram_id": s.telegram_id, "name": s.name, "role": str(s.role),
                      "phone": s.phone, "active": s.active, "reachable": s.reachable} for s in staff])
        return 0
    if not staff:
        print("名册为空。用 wuye staff add 添加员工。")
    for s in staff:
        state = "在职" if s.active else "已停用"
        print(f"{s.telegram_id:>12}  {s.name:<8}  {s.role_label:<6}  {state}")
    return 0


async def _staff_remove(app: Any, args: argparse.Namespace) -> int:
    staff = await app.roster.deactivate_staff(args.telegram_id)
    print(f"已停用员工 {staff.name};其处理记录保留。")
    return 0


async def _staff_invite(app: Any, args: argparse.Namespace) -> int:
    code = await app.roster.create_invite(args.role, name=args.name)
    if args.json:
        _print_json({"code": code, "role": args.role, "valid_days": 7})
    else:
        print(f"邀请码:{code}(岗位 {args.role},7 天内有效,仅可使用一次)")
        print(f"请新员工先在 Telegram 中打开机器人,然后发送:/join {code}")
    return 0


# ---- reports -----------------------------------------------------------------------------------
async def _report_daily(app: Any, args: argparse.Namespace) -> int:
    from notifier.report_cli import report_daily_command

    return await report_daily_command(app, args)


async def _report_monthly(app: Any, args: argparse.Namespace) -> int:
    from notifier.report_cli import ReportUsageError, report_monthly_command

    try:
        return await report_monthly_command(app, args)
    except ReportUsageError as exc:
        raise UsageError(str(exc)) from None


# ---- complaints --------------------------------------------------------------------------------
async def _complaints_submit(app: Any, args: argparse.Namespace) -> int:
    from complaints.model import Actor, ActorKind, Channel, Contact, Location
    from complaints.services import NewComplaint

    text = args.text.strip()
    if not text:
        raise UsageError("--text 不能为空")
    classification = _classify(text)
    category = args.category or (classification.category if classification else "other")
    urgency = args.urgency or (classification.urgency if classification else "general")
    emotion = classification.emotion if classification else "calm"
    location = Location()
    source = _classify(args.location) if args.location else classification
    if source is not None and source.location is not None:
        loc = source.location
        location = Location(loc.building, loc.unit, loc.room, loc.area, args.location)
    elif args.location:
        location = Location(text=args.location)
    phone = args.phone or (classification.phone if classification else None)
    resident_id = None
    if phone:
        resident_id = (await app.roster.resident_for_phone(phone, args.name)).id
    new = NewComplaint(
        text=text, category=category, urgency=urgency, channel=Channel(args.channel), emotion=emotion,
        secondary=list(classification.secondary) if classification else [], location=location,
        contact=Contact(args.name, phone), anonymous=not (args.name or phone), resident_id=resident_id)
    desk = Actor(ActorKind.SYSTEM, name="客服台")
    complaint = await app.complaints.submit(new, by=desk)
    return await _print_complaint(app, complaint, args.json, header="已登记投诉")


def _classify(text: str) -> Any:
    """The intents classifier when installed; None keeps the desk working without it."""
    try:
        from intents.classifier import Classifier
    except ImportError:
        return None
    return _cached_classifier(Classifier).classify(text)


_CLASSIFIER: Any = None


def _cached_classifier(cls: Any) -> Any:
    global _CLASSIFIER
    if _CLASSIFIER is None:
        _CLASSIFIER = cls.load()
    return _CLASSIFIER


async def _print_complaint(app: Any, complaint: Any, as_json: bool, header: str | None = None) -> int:
    from complaints.views import complaint_to_dict, local_text

    tz = app.policy.tz
    if as_json:
        data = complaint_to_dict(complaint, tz)
        data["assignee"] = await _staff_name(app, complaint.assignee_id)
        _print_json(data)
        return 0
    d = complaint_to_dict(complaint, tz)
    if header:
        print(f"{header}:{complaint.number}")
    else:
        print(f"投诉编号:{complaint.number}")
    assignee = await _staff_name(app, complaint.assignee_id)
    print(f"状态:{d['status_label']}  类别:{d['category_label']}  紧急程度:{d['urgency_label']}"
          f"{'  (重复投诉)' if complaint.is_repeat else ''}{'  (情绪激动)' if complaint.is_angry else ''}")
    print(f"位置:{complaint.location.describe()}  联系人:{'匿名' if complaint.anonymous else (d['contact']['name'] or '')}"
          f" {d['contact']['phone'] or ''}".rstrip())
    print(f"处理人:{assignee or '待分派'}")
    print(f"接单时限:{local_text(complaint.accept_by, tz)}  处理时限:{local_text(complaint.resolve_by, tz)}")
    print(f"内容:{complaint.text}")
    if header is None:
        print("处理记录:")
        for e in complaint.history:
            who = e.actor_role or e.actor_kind
            note = f" — {e.note}" if e.note else ""
            print(f"  {local_text(e.at, tz)}  {e.label}({who}){note}")
    return 0


async def _staff_name(app: Any, staff_id: int | None) -> str | None:
    if staff_id is None:
        return None
    async with app.uow() as uow:
        staff = await uow.staff.get(staff_id)
    return staff.name if staff else None


async def _complaints_list(app: Any, args: argparse.Namespace) -> int:
    from complaints.model import Status
    from complaints.views import complaint_to_dict, local_text

    statuses = [Status(args.status)] if args.status else None
    complaints = await app.complaints.list(statuses=statuses, overdue=args.overdue)
    tz = app.policy.tz
    if args.json:
        _print_json([complaint_to_dict(c, tz, with_history=False) for c in complaints])
        return 0
    if not complaints:
        print("没有符合条件的投诉。")
    for c in complaints:
        print(f"{c.number}  {c.status.label:<6}  {c.urgency.label}  处理时限 {local_text(c.resolve_by, tz)}  "
              f"{c.text[:30]}")
    return 0


async def _complaints_show(app: Any, args: argparse.Namespace) -> int:
    complaint = await app.complaints.get(args.number)
    return await _print_complaint(app, complaint, args.json)


async def _complaints_act(app: Any, args: argparse.Namespace) -> int:
    actor = await app.complaints.actor_for(args.by)
    to_staff_id = None
    if args.to is not None:
        async with app.uow() as uow:
            target = await uow.staff.get_by_telegram_id(args.to)
        if target is None:
            from complaints.model import DomainError

            raise DomainError(f"没有 Telegram ID 为 {args.to} 的员工。")
        to_staff_id = target.id
    complaint = await app.complaints.act(args.number, args.action, by=actor, note=args.note,
                                         to_staff_id=to_staff_id)
    if args.json:
        return await _print_complaint(app, complaint, True)
    print(f"{complaint.number}:已执行「{ACTION_LABELS[args.action]}」,当前状态「{complaint.status.label}」。")
    return 0


# ---- sla and calendar --------------------------------------------------------------------------
def _parse_at(value: str) -> datetime:
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(f"时间格式应为 \"YYYY-MM-DD HH:MM\",收到 {value!r}") from None


def _sla_deadlines(args: argparse.Namespace) -> int:
    at = _parse_at(args.at)

    async def compute() -> Any:
        app = await _build_app()
        try:
            return app.policy, app.policy.compute(args.urgency, at)
        finally:
            await app.close()

    policy, deadlines = asyncio.run(compute())
    accept_by = deadlines.accept_by.isoformat(timespec="seconds")
    resolve_by = deadlines.resolve_by.isoformat(timespec="seconds")
    if args.json:
        print(json.dumps({"accept_by": accept_by, "resolve_by": resolve_by}))
    else:
        print(f"accept_by  {accept_by}\nresolve_by {resolve_by}")
    return 0


def _parse_day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"日期格式应为 YYYY-MM-DD,收到 {value!r}") from None


async def _calendar_set(app: Any, args: argparse.Namespace) -> int:
    day = _parse_day(args.day)
    async with app.uow() as uow:
        await uow.calendar.set(day, args.kind == "workday", args.note, app.clock())
        await uow.commit()
    print(f"已将 {day.isoformat()} 设为{'工作日' if args.kind == 'workday' else '休息日'}。")
    return 0


async def _calendar_show(app: Any, args: argparse.Namespace) -> int:
    try:
        year, month = (int(x) for x in args.month.split("-"))
        date(year, month, 1)
    except ValueError:
        raise UsageError(f"月份格式应为 YYYY-MM,收到 {args.month!r}") from None
    days = app.calendar.month(year, month)
    if args.json:
        _print_json([{"date": d.date.isoformat(), "is_workday": d.is_workday, "source": d.source, "note": d.note}
                     for d in days])
        return 0
    weekdays = "一二三四五六日"
    sources = {"override": "管理员设定", "official": "国务院安排", "fallback": "默认(周一至周五)"}
    print(f"{year}年{month}月")
    for d in days:
        kind = "工作日" if d.is_workday else "休息日"
        note = f"  {d.note}" if d.note else ""
        print(f"{d.date.isoformat()} 周{weekdays[d.date.weekday()]}  {kind}  [{sources[d.source]}]{note}")
    return 0


async def _db_upgrade(app: Any, args: argparse.Namespace) -> int:
    from storage.db import current_revision

    print(f"数据库结构已是最新版本({await current_revision(app.engine)})。")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
