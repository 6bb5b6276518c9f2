"""The bot's periodic work on a year of data in PostgreSQL (prints numbers; not a test).

    .venv/bin/python benchmarks/bench_size.py
    .venv/bin/python benchmarks/bench_size.py --complaints 100000 --due 200 --repeat 5 \\
        --postgres-url postgresql+asyncpg://postgres@127.0.0.1:5432/test
    .venv/bin/python benchmarks/bench_size.py --index "CREATE INDEX ix_x ON timers (due_at)"   # try an index

A scratch database gets (all in SQL: INSERT … SELECT generate_series, a few seconds):
``--complaints`` complaints spread over the last 12 months (≈5 % still open, a few hundred of them
overdue, ≈4 % escalated, statuses/categories/urgencies in realistic shares), 10 events each
(1,000,000 for 100,000), 3 finished timers each plus pending ones for open complaints, 30,000
residents and 40 staff. Then, each ``--repeat`` times (median and best printed):

* the reminder tick, ``ComplaintService.fire_due_timers`` with ``--due`` timers due (half
  resolve reminders, half missed resolve deadlines → 服务上移), each run on fresh complaints;
* the same tick when nothing is due (just the claim query);
* ``daily_summary`` (the 09:00 query) and ``render_daily``;
* ``monthly_report`` for the previous month.

Every SELECT those calls issue is then run under EXPLAIN (ANALYZE, BUFFERS); the plans are printed
with any sequential scan flagged. The database is dropped at the end (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402

from bot.container import App, build_app  # noqa: E402
from bot.settings import Settings  # noqa: E402
from notifier.reports import daily_summary, monthly_report, previous_month, render_daily  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BIG = ("complaints", "complaint_events", "timers", "residents", "outbox")
STAFF_ROLES = ["maintenance"] * 10 + ["environment"] * 8 + ["security"] * 6 + ["service"] * 8 \
    + ["supervisor"] * 5 + ["manager"] * 3

# All generated in the database. :n complaints, :now the benchmark's clock; a complaint's age
# grows with g so the year is evenly filled, h is a cheap deterministic hash for the shares.
FILL = [
    """INSERT INTO residents (telegram_id, name, phone, prefers_anonymous, created_at)
       SELECT 500000000 + g, '业主' || g, '138' || lpad(g::text, 8, '0'), false, :now - interval '400 days'
       FROM generate_series(1, 30000) g""",
    """CREATE TEMP TABLE gen AS
       SELECT g, (g * 2654435761::bigint) % 1000 AS h,
              :now - (:n - g) * (interval '365 days' / :n) - ((g * 7919) % 600) * interval '1 second' AS created
       FROM generate_series(1, :n) g""",
    """INSERT INTO complaints (id, number, resident_id, text, category, secondary, urgency, emotion, channel,
         status, assignee_id, contact_name, contact_phone, anonymous, loc_building, loc_unit, loc_room, loc_area,
         loc_text, is_repeat, created_at, accept_by, resolve_by, accepted_at, resolved_at, closed_at,
         escalation_level, satisfied, rating, resolution, external_referral, version)
       SELECT g, 'TS' || to_char(created AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || '-' || lpad(g::text, 6, '0'),
         g % 30000 + 1, '楼道灯坏了,晚上很黑,请尽快处理', cat, '[]', urg, CASE WHEN h % 50 = 0 THEN 'angry' ELSE 'calm' END,
         CASE WHEN h % 10 = 0 THEN 'phone' ELSE 'telegram' END, st,
         CASE WHEN st = 'submitted' THEN NULL ELSE 1 + (g % 32) END, '业主', '13812345678', h % 40 = 0,
         (g % 30 + 1)::text, (g % 4 + 1)::text, (g % 30 + 101)::text, NULL, NULL, h % 20 = 1,
         created, created + interval '4 hours', created + due,
         CASE WHEN st IN ('submitted', 'assigned') THEN NULL ELSE created + interval '1 hour' END,
         CASE WHEN st IN ('resolved', 'closed') THEN created + due * (CASE WHEN h % 10 = 3 THEN 1.3 ELSE 0.5 END) END,
         CASE WHEN st IN ('closed', 'withdrawn', 'external') THEN created + due * 1.5 END,
         CASE WHEN st IN ('submitted', 'assigned', 'in_progress', 'review') AND created + due < :now THEN 1
              WHEN h % 25 = 2 THEN 1 + (h % 2) ELSE 0 END,
         CASE WHEN st = 'closed' AND h % 5 <> 0 THEN h % 7 <> 0 END,
         CASE WHEN st = 'closed' AND h % 5 <> 0 THEN 3 + h % 3 END,
         CASE WHEN st IN ('resolved', 'closed') THEN '已处理' END,
         CASE WHEN st = 'external' THEN '市政 12319' END, 1
       FROM (SELECT g, h, created,
               (ARRAY['maintenance','maintenance','maintenance','environment','environment','security',
                      'staff_attitude','other'])[1 + (g * 31) % 8] AS cat,
               CASE WHEN h % 33 = 0 THEN 'emergency' WHEN h % 5 = 0 THEN 'important' ELSE 'general' END AS urg,
               CASE WHEN h % 33 = 0 THEN interval '1 day' WHEN h % 5 = 0 THEN interval '7 days'
                    ELSE interval '3 days' END AS due,
               CASE WHEN created > :now - interval '4 days' THEN
                      CASE WHEN h < 40 THEN 'submitted' WHEN h < 250 THEN 'assigned' WHEN h < 600 THEN 'in_progress'
                           WHEN h < 650 THEN 'review' WHEN h < 800 THEN 'resolved' ELSE 'closed' END
                    WHEN created > :now - interval '14 days' THEN
                      CASE WHEN h < 20 THEN 'in_progress' WHEN h < 30 THEN 'assigned' WHEN h < 200 THEN 'resolved'
                           WHEN h < 230 THEN 'withdrawn' ELSE 'closed' END
                    ELSE CASE WHEN h < 3 THEN 'in_progress' WHEN h < 5 THEN 'assigned' WHEN h < 45 THEN 'withdrawn'
                              WHEN h < 75 THEN 'external' ELSE 'closed' END END AS st
             FROM gen) s""",
    "SELECT setval(pg_get_serial_sequence('complaints', 'id'), :n)",
    # Ten events per complaint; an escalated one has its 服务上移 as event 6, at its deadline.
    """INSERT INTO complaint_events (complaint_id, seq, kind, at, actor_kind, actor_id, actor_role,
         from_status, to_status, note, data)
       SELECT c.id, s, CASE WHEN s = 6 AND c.escalation_level > 0 THEN 'escalated'
                            ELSE (ARRAY['submitted','assigned','accepted','contact_revealed','note','reminded',
                                        'info_added','resolved','follow_up','closed'])[s] END,
         CASE WHEN s = 6 AND c.escalation_level > 0 THEN LEAST(c.resolve_by + interval '1 minute', :now)
              ELSE LEAST(c.created_at + s * interval '90 minutes', :now) END,
         CASE WHEN s IN (1, 9) THEN 'resident' WHEN s IN (2, 6) THEN 'system' ELSE 'staff' END,
         CASE WHEN s IN (1, 9) THEN c.resident_id WHEN s IN (2, 6) THEN NULL ELSE c.assignee_id END,
         CASE WHEN s IN (3, 4, 5, 7, 8, 10) THEN 'maintenance' END, c.status, c.status,
         CASE WHEN s = 5 THEN '已联系业主' END,
         CASE WHEN s = 6 AND c.escalation_level > 0
              THEN json_build_object('level', c.escalation_level, 'reason', 'resolve_overdue')
              ELSE '{}'::json END
       FROM complaints c CROSS JOIN generate_series(1, 10) s""",
    # Finished timers: three per complaint, long done.
    """INSERT INTO timers (kind, complaint_id, due_at, done_at, created_at, data, dedup_key)
       SELECT (ARRAY['accept_remind','resolve_remind','resolve_due'])[s], c.id,
              LEAST(c.created_at + s * interval '1 day', :now - interval '1 minute'),
              LEAST(c.created_at + s * interval '1 day', :now - interval '1 minute'), c.created_at, '{}',
              'done:' || c.id || ':' || s
       FROM complaints c CROSS JOIN generate_series(1, 3) s""",
    # Pending: open complaints' next deadline (future ones), plus tomorrow's summary.
    """INSERT INTO timers (kind, complaint_id, due_at, done_at, created_at, data, dedup_key)
       SELECT 'resolve_due', c.id, c.resolve_by, NULL, c.created_at,
              json_build_object('deadline', extract(epoch FROM c.resolve_by)::bigint), 'pending:' || c.id
       FROM complaints c WHERE c.status IN ('submitted','assigned','in_progress','review') AND c.resolve_by > :now""",
    """INSERT INTO timers (kind, complaint_id, due_at, done_at, created_at, data, dedup_key)
       VALUES ('daily_summary', NULL, :now + interval '1 day', NULL, :now, '{}', 'daily_summary:bench')""",
]
# :k due timers on k open complaints no earlier repetition used (each run does fresh work).
DUE = """
    INSERT INTO timers (kind, complaint_id, due_at, done_at, created_at, data, dedup_key)
    SELECT CASE WHEN rn % 2 = 0 THEN 'resolve_remind' ELSE 'resolve_due' END, id, :now - interval '1 minute', NULL,
           :now - interval '1 day', json_build_object('deadline', extract(epoch FROM resolve_by)::bigint),
           'bench:' || :run || ':' || id
    FROM (SELECT id, resolve_by, row_number() OVER (ORDER BY id) AS rn FROM complaints c
          WHERE status IN ('assigned', 'in_progress', 'review') AND NOT EXISTS (
              SELECT 1 FROM timers t WHERE t.complaint_id = c.id AND t.dedup_key LIKE 'bench:%')
          ORDER BY id LIMIT :k) c"""


def typed(sql: str) -> str:
    """asyncpg wants to know the parameters' types."""
    for name, kind in (("now", "timestamptz"), ("n", "integer"), ("run", "integer"), ("k", "integer")):
        sql = re.sub(rf"(?<!:):{name}\b", f"CAST(:{name} AS {kind})", sql)
    return sql


@contextmanager
def captured(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """Every SELECT the block sends, with its parameters, for EXPLAIN afterwards."""
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    event.listen(engine.sync_engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", listen)


async def timed(job: Callable[[int], Awaitable[Any]], repeat: int) -> tuple[list[float], Any]:
    times, last = [], None
    for i in range(repeat):
        t0 = time.perf_counter()
        last = await job(i)
        times.append(time.perf_counter() - t0)
    return times, last


def fmt(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:8.1f} ms   best {min(times) * 1000:8.1f} ms"


async def explain(app: App, statements: list[tuple[str, Any]]) -> None:
    done: set[str] = set()
    async with app.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        for statement, params in statements:
            if statement in done:
                continue
            done.add(statement)
            rows = await raw.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement, *(params or ()))
            plan = [r[0] for r in rows]
            flag = "  <-- SEQUENTIAL SCAN ON A BIG TABLE" if any(f"Seq Scan on {t} " in line for line in plan
                                                              for t in BIG) else ""
            print("\n  " + " ".join(statement.split())[:220] + flag)
            for line in plan:
                if "Buffers" not in line:
                    print("    " + line)


async def main(args: argparse.Namespace) -> None:
    name = f"bench_size_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(args.postgres_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
        version = (await conn.execute(text("SHOW server_version"))).scalar_one()
    url = args.postgres_url.rsplit("/", 1)[0] + "/" + name
    app = await build_app(Settings(database_url=url, _env_file=None))
    try:
        print(f"PostgreSQL {version}; database {name}; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.1f}")
        for i, role in enumerate(STAFF_ROLES):
            await app.roster.add_staff(telegram_id=9000 + i, name=f"员工{i}", role=role)
        now = app.clock()
        t0 = time.perf_counter()
        async with app.engine.begin() as conn:
            for sql in FILL:
                await conn.execute(text(typed(sql)), {"now": now, "n": args.complaints})
            for sql in args.index:
                print(f"extra index: {sql}")
                await conn.execute(text(sql))
        vacuum = create_async_engine(url, isolation_level="AUTOCOMMIT")
        async with vacuum.connect() as conn:  # planner statistics, as autovacuum would have them
            await conn.execute(text("VACUUM ANALYZE"))
        await vacuum.dispose()
        async with app.engine.connect() as conn:
            counts = {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()
                      for t in ("complaints", "complaint_events", "timers")}
            pending = (await conn.execute(text("SELECT count(*) FROM timers WHERE done_at IS NULL"))).scalar_one()
            shares = (await conn.execute(text(
                "SELECT count(*) FILTER (WHERE status IN ('submitted','assigned','in_progress','review')),"
                " count(*) FILTER (WHERE status IN ('submitted','assigned','in_progress','review')"
                " AND resolve_by < now()), count(*) FILTER (WHERE escalation_level > 0) FROM complaints"))).one()
        print(f"generated in {time.perf_counter() - t0:.1f} s: {counts['complaints']:,} complaints, "
              f"{counts['complaint_events']:,} events, {counts['timers']:,} timers ({pending:,} pending); "
              f"open {shares[0]:,}, overdue {shares[1]:,}, escalated {shares[2]:,}")

        fired: list[int] = []

        async def tick(i: int) -> int:
            async with app.engine.begin() as conn:
                await conn.execute(text(typed(DUE)), {"now": app.clock(), "run": i, "k": args.due})
            t0 = time.perf_counter()
            n = await app.complaints.fire_due_timers(limit=args.due)
            fired.append(n)
            return time.perf_counter() - t0  # only the tick itself

        with captured(app.engine) as tick_sql:
            tick_times = [await tick(0)]
        tick_times += [await tick(i) for i in range(1, args.repeat)]
        print(f"\nreminder tick, {args.due} due timers:  median {statistics.median(tick_times) * 1000:8.1f} ms"
              f"   best {min(tick_times) * 1000:8.1f} ms   ({statistics.median(tick_times) * 1000 / args.due:.1f} ms "
              f"per timer; runs {', '.join(f'{t * 1000:.0f}' for t in tick_times)} ms, fired {fired})")

        with captured(app.engine) as claim_sql:
            idle, _ = await timed(lambda i: app.complaints.fire_due_timers(), max(args.repeat, 20))
        print(f"reminder tick, nothing due:      {fmt(idle)}")

        async def daily(i: int) -> Any:
            async with app.sessions() as session:
                return await daily_summary(session, now=app.clock())

        with captured(app.engine) as daily_sql:
            daily_times, summary = await timed(daily, args.repeat)
        print(f"daily_summary:                   {fmt(daily_times)}   "
              f"({summary.open_total} open, {len(summary.overdue)} overdue, {len(summary.escalations)} escalations)")
        render_times, rendered = await timed(lambda i: _async(render_daily, summary, app.policy.tz), args.repeat)
        print(f"render_daily:                    {fmt(render_times)}   ({len(rendered):,} characters)")

        year, month = previous_month(now, app.policy.tz)

        async def monthly(i: int) -> Any:
            async with app.sessions() as session:
                return await monthly_report(session, app.policy.tz, year, month)

        with captured(app.engine) as monthly_sql:
            monthly_times, report = await timed(monthly, args.repeat)
        print(f"monthly_report {year}-{month:02d}:          {fmt(monthly_times)}   "
              f"({report.total.received} received)")

        print("\nEXPLAIN ANALYZE of the queries above:")
        await explain(app, claim_sql[:1] + tick_sql + daily_sql + monthly_sql)
    finally:
        await app.close()
        if not args.keep:
            async with admin.connect() as conn:
                await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _async(fn: Callable[..., Any], *a: Any) -> Any:
    return fn(*a)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--complaints", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--index", action="append", default=[], help="extra CREATE INDEX to try (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--postgres-url", default=os.environ.get("WUYE_TEST_POSTGRES_URL", DEFAULT_PG))
    asyncio.run(main(parser.parse_args()))
