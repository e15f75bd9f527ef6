"""`ctiserver forecast`, `ctiserver staffing` and `ctiserver roster`: workforce management commands.

The command line is where the clock is chosen (the default first day is tomorrow) and the store
is opened; everything else is the pure cores of this package.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from ..clock import SystemClock
from ..store.clidb import CliError, db_url, open_store
from .config import WfmConfig, load_wfm_config
from .forecast import ForecastError, QueueForecast, forecast_queue
from .history import QueueHistory
from .outage_days import OutageSpan, outage_days
from .render import FORMATTERS
from .report import forecast_result


def _date(text: str | dt.date | None, option: str) -> dt.date | None:
    """A date option, checked in the command (not by argparse, whose error prints the whole usage)."""
    if text is None or isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CliError(f"{option} '{text}' is not a date like 2026-12-07") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="config")
    p.add_argument("--url", help="event store URL (default: database.url from ctiserver.yaml)")
    p.add_argument("--format", choices=sorted(FORMATTERS), default="table")
    p.add_argument("--output", help="write to this file instead of standard output")


def add_wfm_commands(subparsers: argparse._SubParsersAction) -> None:
    """`ctiserver forecast` (and the staffing/roster commands) on the `ctiserver` CLI."""
    p = subparsers.add_parser("forecast", help="forecast offered calls and handle time per queue and half hour")
    _common(p)
    p.add_argument("--from", dest="start", help="first forecast day (default: tomorrow)")
    p.add_argument("--weeks", type=int, default=2, help="how many weeks to forecast (default 2)")
    p.add_argument("--queue", action="append", help="only this queue (repeatable)")
    p.add_argument("--by", choices=["halfhour", "day"], default="halfhour")
    p.add_argument("--history-weeks", type=int, help="weeks of history (default: wfm.yaml forecast.history_weeks)")
    p.set_defaults(func=run_forecast_command)

    p = subparsers.add_parser("staffing", help="agents required per queue and half hour (Erlang C and A) "
                                               "from the forecast; --verify runs it through the simulator")
    _common(p)
    p.add_argument("--from", dest="start", help="first day (default: tomorrow)")
    p.add_argument("--days", type=int, default=1, help="how many days (default 1)")
    p.add_argument("--queue", action="append", help="only this queue (repeatable)")
    p.add_argument("--history-weeks", type=int, help="weeks of history (default: wfm.yaml forecast.history_weeks)")
    p.add_argument("--verify", action="store_true",
                   help="play each day through the simulator with that staffing; print simulated SL per tier")
    p.add_argument("--seed", type=int, default=1, help="simulator seed for --verify")
    p.set_defaults(func=run_staffing_command)

    p = subparsers.add_parser("roster", help="build, show and export a week's roster (OR-Tools CP-SAT)")
    p.add_argument("action", choices=["build", "show"])
    _common(p)
    p.add_argument("--week", required=True, help="the week's Monday, e.g. 2026-12-07")
    p.add_argument("--history-weeks", type=int, help="weeks of history (default: wfm.yaml forecast.history_weeks)")
    p.add_argument("--queue", action="append", help="only this queue (repeatable)")
    p.add_argument("--seconds", type=float, help="solver budget (deterministic seconds; default wfm.yaml's)")
    p.add_argument("--view", choices=["coverage", "shifts"], default="coverage",
                   help="print the coverage per half hour (default) or the shifts")
    p.add_argument("--csv", help="also write the shifts to this CSV file")
    p.add_argument("--xlsx", help="also write the roster (grid, shifts, coverage) to this Excel file")
    p.set_defaults(func=run_roster_command)

    p = subparsers.add_parser("adherence", help="schedule adherence and attendance per agent and team for a day")
    _common(p)
    p.add_argument("--date", help="local day (default today); up to now when it is today")
    p.set_defaults(func=run_adherence_command)


def _emit(result: dict[str, Any], fmt: str, output: str | None) -> None:
    text = FORMATTERS[fmt](result)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)


def load_history(config_dir: Path, url_override: str | None, cfg: WfmConfig, start: dt.date, weeks: int,
                 until: dt.date | None = None) -> tuple[dict[str, QueueHistory], list[OutageSpan], str | None]:
    """The history of the `weeks` before `start`, and the outage records from then to `until` (with a
    note instead when the outage records cannot be read)."""
    from sqlalchemy.exc import SQLAlchemyError

    from .store import history_from_store, outage_spans

    url = db_url(config_dir, url_override)
    first = start - dt.timedelta(weeks=weeks)

    async def run() -> tuple[dict[str, QueueHistory], list[OutageSpan], str | None]:
        engine = await open_store(url, config_dir, create=False)
        try:
            history = await history_from_store(engine, cfg.calendar, first, start)
            try:
                spans = await outage_spans(engine, cfg.calendar.at(first), cfg.calendar.at(until or start))
            except SQLAlchemyError as exc:
                return history, [], f"outage records not read ({type(exc).__name__}): only wfm.yaml's outage_days " \
                                    "are kept out of the model"
            return history, spans, None
        finally:
            await engine.dispose()

    return asyncio.run(run())


def forecasts(args: argparse.Namespace, cfg: WfmConfig, start: dt.date, days: int) -> list[QueueForecast]:
    weeks = args.history_weeks or cfg.forecast.history_weeks
    end = start + dt.timedelta(days=days)
    history, spans, problem = load_history(Path(args.config), args.url, cfg, start, weeks, end)
    queues = sorted(history) if not args.queue else args.queue
    missing = [q for q in queues if q not in history]
    if missing or not queues:
        raise CliError(f"no calls in the event store for {', '.join(missing) or 'any queue'} in the "
                       f"{weeks} weeks before {start}")
    marked = {**outage_days(spans, cfg.calendar, cfg.forecast.major_outage, SystemClock().now()),
              **cfg.forecast.outage_days}
    try:
        out = [forecast_queue(history[q], cfg.calendar, start, days, {d for d in marked if d < start})
               for q in queues]
    except ForecastError as exc:
        raise CliError(str(exc)) from None
    for fc in out:
        fc.outage_days = {d: why for d, why in sorted(marked.items())}
        fc.problems = [problem] if problem else []
    return out


def _start(args: argparse.Namespace, cfg: WfmConfig) -> dt.date:
    start = _date(args.start, "--from")
    if start is not None:
        return start
    return cfg.calendar.today(SystemClock().now()) + dt.timedelta(days=1)


def run_forecast_command(args: argparse.Namespace) -> int:
    if not 1 <= args.weeks <= 8:
        raise CliError("--weeks must be between 1 and 8")
    cfg = load_wfm_config(Path(args.config))
    start = _start(args, cfg)
    _emit(forecast_result(forecasts(args, cfg, start, 7 * args.weeks), by=args.by), args.format, args.output)
    return 0


def run_staffing_command(args: argparse.Namespace) -> int:
    from ..acd.config import load_acd_config
    from ..kpi.config import load_kpi_config
    from .staffing import staffing_for
    from .verify import verify_plan

    if not 1 <= args.days <= 56:
        raise CliError("--days must be between 1 and 56")
    config_dir = Path(args.config)
    cfg = load_wfm_config(config_dir)
    targets = load_kpi_config(config_dir, cfg.calendar).tier_targets
    start = _start(args, cfg)
    opts = cfg.staffing
    fcs = forecasts(args, cfg, start, args.days)
    result = staffing_result(fcs, [staffing_for(fc, targets, model=opts.model, shrinkage=opts.shrinkage.total(),
                                                default_patience_s=opts.patience_s) for fc in fcs], opts.model,
                             opts.shrinkage.total())
    if args.verify:
        acd = load_acd_config(config_dir)
        checks: list[dict[str, Any]] = []
        for fc, needs in zip(fcs, result.pop("_needs"), strict=True):
            if fc.queue not in acd.skills:
                raise CliError(f"queue {fc.queue} is not a skill of acd.yaml: the simulator cannot route it")
            for check in verify_plan(acd, cfg.calendar, targets, fc, needs, opts.patience_s, seed=args.seed):
                checks.append(check)
                result["notes"].append(
                    f"{fc.queue} {check['date']}: simulated {check['calls']} calls with this staffing: " + "; ".join(
                        f"{t['tier']} SL {t['simulated_sl']:.1%} (target {t['target']:.0%} in {t['threshold_s']:g} s"
                        f"{', met' if t['met'] else ', MISSED'})" for t in check["tiers"]))
        result["verification"] = checks
    result.pop("_needs", None)
    _emit(result, args.format, args.output)
    return 0


def staffing_result(fcs: list[QueueForecast], needs: list[list[Any]], model: str, shrinkage: float
                    ) -> dict[str, Any]:
    from .report import slot_label

    rows = []
    for per_queue in needs:
        for n in per_queue:
            rows.append({**n.as_dict(), "time": slot_label(n.slot)})
    notes = [f"required = {model.replace('_', ' ').title()} agents on the phones; scheduled = required / "
             f"(1 - shrinkage {shrinkage:.0%})"]
    notes += [f"{fc.queue}: patience {fc.patience_s:.0f} s estimated from history" if fc.patience_s else
              f"{fc.queue}: no abandons in history, patience from wfm.yaml" for fc in fcs]
    return {"title": "Staffing per queue and half hour", "columns": [
        "queue", "day", "time", "calls", "aht_s", "target", "erlang_c", "erlang_a", "required", "scheduled",
        "expected_sl"], "rows": rows, "notes": notes, "_needs": needs}


def roster_file(config_dir: Path, week: dt.date) -> Path:
    """Where a week's roster is kept: <config's parent>/var/wfm/roster-<monday>.json (the server reads it)."""
    from .config import roster_folder

    return roster_folder(config_dir) / f"roster-{week.isoformat()}.json"


def roster_agents(config_dir: Path, cfg: WfmConfig) -> list[Any]:
    from ..acd.config import load_acd_config

    acd = load_acd_config(config_dir, cfg.calendar)
    try:
        return cfg.roster.roster_agents([(a.id, a.name, list(a.skills)) for a in acd.agents])
    except ValueError as exc:
        raise CliError(str(exc)) from None


def run_roster_command(args: argparse.Namespace) -> int:
    import json

    from ..kpi.config import load_kpi_config
    from .export import roster_xlsx, shifts_csv
    from .roster import build_roster, coverage_rows, from_doc, need_from_staffing, to_doc
    from .shifts import violations
    from .staffing import staffing_for

    args.week = _date(args.week, "--week")
    if args.week.weekday() != 0:
        raise CliError(f"--week {args.week} is a {args.week:%A}: give the week's Monday")
    config_dir = Path(args.config)
    cfg = load_wfm_config(config_dir)
    if not cfg.roster.patterns:
        raise CliError(f"{config_dir / 'wfm.yaml'}: roster.patterns lists no shift pattern")
    agents = roster_agents(config_dir, cfg)
    path = roster_file(config_dir, args.week)
    before = _carried_from(roster_file(config_dir, args.week - dt.timedelta(days=7)), cfg)
    if args.action == "build":
        targets = load_kpi_config(config_dir, cfg.calendar).tier_targets
        args.start = args.week
        opts = cfg.staffing
        needs = [n for fc in forecasts(args, cfg, args.week, 7)
                 for n in staffing_for(fc, targets, model=opts.model, default_patience_s=opts.patience_s)]
        need = need_from_staffing(needs, args.week, opts.shrinkage.besides_breaks())
        try:
            roster = build_roster(cfg.roster, agents, args.week, need, seconds=args.seconds, before=before)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        doc = to_doc(roster, agents)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        if not path.exists():
            raise CliError(f"no roster for the week of {args.week} yet: "
                           f"run `ctiserver roster build --week {args.week}`")
        try:
            roster = from_doc(json.loads(path.read_text(encoding="utf-8")), cfg.roster)
        except (ValueError, KeyError) as exc:
            raise CliError(f"{path}: {exc}") from None
        doc = to_doc(roster, agents)
        doc["notes"] = [*doc["notes"], *violations(roster.assignments, cfg.roster, agents, args.week, before)]
    cover = coverage_rows(roster, agents)
    if args.csv:
        Path(args.csv).write_text(shifts_csv(doc), encoding="utf-8")
    if args.xlsx:
        Path(args.xlsx).write_bytes(roster_xlsx(doc, cover, [(a.id, a.name, a.team) for a in agents]))
    notes = [f"roster {path}: {len(doc['assignments'])} shifts for {len(agents)} agents; requirement met in "
             f"{doc['met']} of {doc['counted']} half hours with calls ({doc['met_share']:.1%}); solver {doc['status']} "
             f"in {doc['solve_s']} s"] + doc["notes"]
    if args.view == "shifts":
        result = {"title": f"Roster, week of {args.week}", "columns": ["agent", "name", "team", "date", "start", "end",
                                                                      "meal", "pattern"],
                  "rows": doc["assignments"], "notes": notes, "roster": doc}
    else:
        result = {"title": f"Coverage per half hour, week of {args.week}", "columns": list(cover[0]),
                  "rows": cover, "notes": notes, "roster": doc}
    _emit(result, args.format, args.output)
    return 0


def _carried_from(path: Path, cfg: WfmConfig) -> dict[str, Any] | None:
    """What the saved roster at `path` (the week before) leaves the next week; None without one."""
    import json

    from .roster import from_doc
    from .shifts import carried

    if not path.exists():
        return None
    try:
        return dict(carried(from_doc(json.loads(path.read_text(encoding="utf-8")), cfg.roster).assignments))
    except (ValueError, KeyError) as exc:
        raise CliError(f"{path} (the week before): {exc}") from None


def run_adherence_command(args: argparse.Namespace) -> int:
    import json

    from .adherence import adherence, planned_day, team_adherence
    from .roster import from_doc
    from .store import agent_states

    config_dir = Path(args.config)
    cfg = load_wfm_config(config_dir)
    now = SystemClock().now()
    day = _date(args.date, "--date") or cfg.calendar.today(now)
    week = day - dt.timedelta(days=day.weekday())
    path = roster_file(config_dir, week)
    if not path.exists():
        raise CliError(f"no roster for the week of {week}: run `ctiserver roster build --week {week}`")
    roster = from_doc(json.loads(path.read_text(encoding="utf-8")), cfg.roster)
    agents = {a.id: a for a in roster_agents(config_dir, cfg)}
    until = min(now, cfg.calendar.at(day + dt.timedelta(days=1)))
    url = db_url(config_dir, args.url)

    async def read() -> list[Any]:
        engine = await open_store(url, config_dir, create=False)
        try:
            return await agent_states(engine, cfg.calendar.at(day) - 86400.0, until)
        finally:
            await engine.dispose()

    rows = adherence(planned_day(roster.assignments, week, day, cfg.calendar), asyncio.run(read()), until)
    teams = team_adherence(rows, {a: x.team for a, x in agents.items()})
    out = [{**r.as_dict(), "name": agents[r.agent].name if r.agent in agents else "",
            "team": agents[r.agent].team if r.agent in agents else ""} for r in rows]
    notes = [f"team {t or '(none)'}: adherence {'-' if v is None else f'{v:.1%}'}" for t, v in teams.items()]
    _emit({"title": f"Adherence and attendance, {day}", "columns": [
        "agent", "name", "team", "scheduled_s", "adherent_s", "adherence", "late_login_s", "early_logout_s", "absent",
        "now_activity", "now_state", "now_in_adherence"], "rows": out, "notes": notes, "teams": teams},
          args.format, args.output)
    return 0
