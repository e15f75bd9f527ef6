"""Every configuration file of every feature, loaded and checked in one place.

`check_all` is what `ctiserver check` and `serve` run: it collects the problems
of all files (not just the first) so an operator fixes them in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..config import ServerConfig, load_server_config
from ..configfile import ConfigError, ConfigProblem


def load_server(config_dir: Path) -> ServerConfig:
    return load_server_config(config_dir)


def _checks(now: float) -> list[Callable[[Path], object]]:
    """One callable per feature: loads its files, raising ConfigError or returning problems."""
    from ..acd.config import load_acd_config
    from ..calendar import load_calendar
    from ..ivr.tools import check_ivr
    from ..kpi.config import load_kpi_config
    from ..outages.model import check_outages
    from ..outbound.model import check_outbound
    from ..qc.sheet import load_qc_sheet
    from ..recording.config import load_recording_config
    from ..repair.model import check_crews
    from ..sms.model import check_sms
    from ..web.config import load_desktop_config
    from ..wfm.config import check_wfm
    from ..workorders.deadlines import load_workorder_table

    return [load_server_config, load_calendar, load_workorder_table, load_acd_config, partial(check_ivr, now=now),
            load_kpi_config, check_outbound, load_desktop_config, check_outbound_against_acd, check_callback_categories,
            check_wfm, load_recording_config, load_qc_sheet, check_sms, check_outages, check_crews, check_agent_servers]


def check_agent_servers(config_dir: Path) -> list[ConfigProblem]:
    """An agent's `server` in acd.yaml must be an Asterisk of ctiserver.yaml (their phone registers there)."""
    from ..acd.config import load_acd_config
    from ..configfile import compose, node_line

    try:
        acd, server = load_acd_config(config_dir), load_server_config(config_dir)
    except ConfigError:
        return []  # reported by the files' own checks
    names = [s.name for s in server.asterisk]
    path = Path(config_dir) / "acd.yaml"
    root = compose(path) if path.exists() else None
    return [ConfigProblem(str(path), node_line(root, ("agents", i, "server")),
                          f"agents.{i}.server: '{a.server}' is not an Asterisk of ctiserver.yaml ({', '.join(names)})")
            for i, a in enumerate(acd.agents) if a.server and a.server not in names]


def check_outbound_against_acd(config_dir: Path) -> list[ConfigProblem]:
    """Skills and tiers outbound.yaml hands to the ACD must exist there (each file alone cannot tell)."""
    from ..acd.config import load_acd_config
    from ..configfile import compose, node_line
    from ..outbound.model import load_outbound_config

    try:
        acd, out = load_acd_config(config_dir), load_outbound_config(config_dir)
    except ConfigError:
        return []  # reported by the files' own checks
    path = Path(config_dir) / "outbound.yaml"
    root = compose(path) if path.exists() else None
    skills, tiers = set(acd.skills), {t.name for t in acd.tiers}
    wanted = [(("dial", "agent_skill"), out.dial.agent_skill, skills, "skill"),
              (("callbacks", "skill"), out.callbacks.skill, skills, "skill"),
              (("callbacks", "tier"), out.callbacks.tier, tiers, "tier")]
    problems = [ConfigProblem(str(path), node_line(root, loc), f"{'.'.join(loc)}: '{value}' is not an ACD {kind} "
                                                                f"(acd.yaml: {', '.join(sorted(known))})")
                for loc, value, known, kind in wanted if value not in known]
    return problems + _check_escalation(config_dir, acd)


def check_callback_categories(config_dir: Path) -> list[ConfigProblem]:
    """outbound.yaml callbacks.always / callbacks.sample are keyed by work-order category: a key that is
    not one (say `fault` where orders say `fault_repair`) would silently call 100% of that category."""
    from ..configfile import compose, node_line
    from ..outbound.model import load_outbound_config
    from ..web.config import load_desktop_config

    try:
        out, desk = load_outbound_config(config_dir), load_desktop_config(config_dir)
    except ConfigError:
        return []  # reported by the files' own checks
    known = desk.disposition_categories
    path = Path(config_dir) / "outbound.yaml"
    root = compose(path) if path.exists() else None
    keys = [("always", i, key) for i, key in enumerate(out.callbacks.always)] + \
        [("sample", key, key) for key in out.callbacks.sample]
    return [ConfigProblem(str(path), node_line(root, ("callbacks", section, loc)),
                          f"callbacks.{section}: '{key}' is not a work-order category "
                          f"(desktop.yaml disposition_categories: {', '.join(known)})")
            for section, loc, key in keys if key not in known]


def _check_escalation(config_dir: Path, acd: object) -> list[ConfigProblem]:
    """The desktop's escalation target must be a queue an attended transfer can dial (a transfer code)."""
    from ..configfile import compose, node_line
    from ..web.config import load_desktop_config

    try:
        desk = load_desktop_config(config_dir)
    except ConfigError:
        return []
    codes = getattr(acd, "queue_codes", {})
    if desk.escalation_target in codes:
        return []
    path = Path(config_dir) / "desktop.yaml"
    line = node_line(compose(path), ("escalation_target",)) if path.exists() else 0
    return [ConfigProblem(str(path), line, f"escalation_target: '{desk.escalation_target}' has no transfer code in "
                                           f"acd.yaml transfer_codes (an attended transfer dials digits)")]


def secret_warnings(config_dir: Path) -> list[ConfigProblem]:
    """A literal AMI `secret` in ctiserver.yaml: fine for the sandbox, a leak anywhere else."""
    from ..configfile import compose, node_line

    path = Path(config_dir) / "ctiserver.yaml"
    try:
        cfg = load_server_config(config_dir)
        root = compose(path) if path.is_file() else None
    except ConfigError:
        return []  # reported by the checks
    return [ConfigProblem(str(path), node_line(root, ("asterisk", i, "secret")),
                          f"warning: asterisk.{i}.secret is written in the file; outside the sandbox give it "
                          f"from the environment (secret_env: CTISERVER_AMI_SECRET)")
            for i, srv in enumerate(cfg.asterisk) if srv.secret and not srv.secret_env]


def check_all(config_dir: Path, now: float) -> list[ConfigProblem]:
    """Every problem of every file; `now` is when the check runs (the sample data's offsets count from it)."""
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        return [ConfigProblem(str(config_dir), 0, "configuration folder not found")]
    problems: list[ConfigProblem] = []
    for check in _checks(now):
        try:
            result = check(config_dir)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if isinstance(result, list):
            problems.extend(p for p in result if isinstance(p, ConfigProblem))
    # every feature reads calendar.yaml: its problems are reported once, not once per feature
    return list({str(p): p for p in problems}.values())

