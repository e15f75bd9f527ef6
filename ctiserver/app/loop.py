"""The outage and repair loop in the server (issue 16): SMS, outages, repair orders, their routes and
their features, built from the configuration folder and connected to outbound (do-not-call list,
notice campaigns, the ACD callback that replaces an undelivered SMS) and to the desktop's logins.

    SMS ◀─ outages (notices) ◀─ dispatcher (REST, CLI)        IVR lookups ─▶ outages table (live)
    SMS ◀─ repair (apology on dispatch) ─▶ outages (closed on restoration) ─▶ "restored": SMS, important: a call
    repair (restored) ─▶ outbound.request_callback (the satisfaction callback of its work orders)
    repair (dispatch) ─▶ crew: SMS with the order's link, a call that reads it out (1 accepts: AMI)
    SMS undelivered ─▶ outbound.on_callback (an agent calls the customer)
    outbound campaigns with channels [sms] / [phone, sms] ─▶ SMS (one message per contact)

Features, in order: SMS (the sender), repair (the deadline watch), crew calls. Outages need no task of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..acd.model import ScheduleCallback
from ..calendar import Calendar
from ..events import Event, Kind
from ..outages.attach import FaultAttacher, Lookup
from ..outages.http import add_outage_routes
from ..outages.model import load_outages_config
from ..outages.notices import call_notices, restoration_notices, sms_notices
from ..outages.service import OutageService
from ..outages.store import OutageStore
from ..outbound.model import load_outbound_config
from ..outbound.store import OutboundStore
from ..repair.crewcall import CrewNotifier
from ..repair.customers import apology, restored, satisfaction
from ..repair.http import add_repair_routes
from ..repair.model import load_crews_config
from ..repair.service import RepairService, chained
from ..repair.store import RepairStore
from ..sms.campaigns import CampaignSms
from ..sms.engine import SendRules
from ..sms.http import add_sms_routes
from ..sms.kannel import KannelGateway
from ..sms.model import load_sms_config
from ..sms.service import SmsService
from ..sms.store import SmsRow, SmsStore
from ..workorders.deadlines import load_workorder_table

log = logging.getLogger(__name__)


class _Ami:
    """The AMI link that places outbound calls (outbound.yaml dial.server), looked up when a call is placed."""

    def __init__(self, server: Any, out_cfg: Any) -> None:
        self.server, self.name = server, out_cfg.dial.server

    async def action(self, name: str, fields: dict[str, Any] | None = None, /) -> Any:
        client = self.server.ami[self.name or self.server.cfg.asterisk[0].name]
        return await client.action(name, fields)


@dataclass
class Loop:
    sms: SmsService
    outages: OutageService
    repair: RepairService
    attacher: FaultAttacher


def install_loop(server: Any, engine: AsyncEngine, config_dir: Path, calendar: Calendar, outbound: Any,
                 sessions: Any, leader: Any, customer_by_phone: Lookup) -> Loop:
    """Build the services, add their routes to the server's app and their features to its lifecycle: the
    fault-report attacher on every node, the SMS sender and the repair watch in the leader group (a standby
    must not send them twice)."""
    out_cfg = load_outbound_config(config_dir, calendar)
    sms_cfg = load_sms_config(config_dir, calendar)
    outbound_store = OutboundStore(engine)

    async def listed(numbers: Sequence[str]) -> Mapping[str, str]:
        return await outbound_store.listed(list(numbers))

    async def fallback(row: SmsRow) -> None:
        """An SMS not delivered: an agent calls the customer (an ACD callback, screen-pop with the message)."""
        outbound.on_callback(ScheduleCallback(
            call_id=f"sms-{row.id}", number=row.msg.number, skill=out_cfg.dial.agent_skill, tier="normal",
            due_ts=server.clock.now(), reason="sms_undelivered",
            customer={"account": row.msg.account, "sms_kind": row.msg.kind, "sms_text": row.text}))

    def emit_sms(row: SmsRow, state: str) -> None:
        server.emit(Event(Kind.SMS, server.clock.now(), data={"id": row.id, "kind": row.msg.kind, "state": state,
                                                               "ref": row.ref}))

    sms = SmsService(sms_cfg, SmsStore(engine), KannelGateway(sms_cfg.gateway), server.clock,
                     SendRules.of(sms_cfg, out_cfg), listed=listed,
                     fallback=fallback if sms_cfg.fallback_call else None, on_final=emit_sms)
    outage_cfg = load_outages_config(config_dir, calendar)
    outages = OutageService(OutageStore(engine), outage_cfg, server.clock,
                            sms=sms_notices(sms, outage_cfg) if sms_cfg.enabled else None,
                            call_notices=call_notices(outbound_store, outage_cfg, server.clock.now),
                            emit=server.emit, restoration=restoration_notices(
                                sms if sms_cfg.enabled else None, outbound_store, outage_cfg, server.clock.now))
    crews = load_crews_config(config_dir, calendar)
    table = load_workorder_table(config_dir, calendar).crews

    async def crew_dispatched(order: Any, row: dict[str, Any]) -> None:
        await crew_notifier.on_dispatch(order, row)  # built below: it acts on the service it is a hook of

    async def crew_alerted(alert: Any, order: Any, who: str) -> None:
        await crew_notifier.on_alert(alert, order, who)

    repair = RepairService(RepairStore(engine), crews, table, server.clock, server.emit,
                           on_dispatch=chained(apology(sms, outages, crews, lambda o: table.arrive_for(
                               o.area_class).due_ts(o.dispatched_ts)), crew_dispatched),
                           on_restore=chained(restored(outages), satisfaction(outages, outbound.request_callback)),
                           on_alert=crew_alerted)
    crew_notifier = CrewNotifier(repair, crews, table, server.clock, server.emit, sms=sms, ami=_Ami(server, out_cfg),
                                 prompt=outbound.prompt, channel=out_cfg.dial.channel,
                                 caller_id=out_cfg.dial.caller_id)

    async def require(request: Any, roles: frozenset[str]) -> Any:
        return await sessions.require(request, roles)

    add_sms_routes(server.http_app, lambda: sms, require)
    add_outage_routes(server.http_app, lambda: outages, require)
    async def loop_events(since: float, until: float) -> list[Event]:
        from ..store.query import fetch_events

        return await fetch_events(server.store.engine, since=since, until=until,
                                  kinds=[Kind.REPAIR, Kind.SMS, Kind.OUTAGE, Kind.OUTAGE_REPORT])

    add_repair_routes(server.http_app, lambda: repair, require, loop_events)
    attacher = FaultAttacher(outages, customer_by_phone, frozenset(outage_cfg.attach_at_nodes))
    server.event_listeners.append(attacher.on_event)
    server.add_feature("outage reports", attacher.running)
    leader.add("SMS", sms.running)
    leader.add("campaign SMS", CampaignSms(sms, outbound_store, out_cfg, server.clock).running)
    leader.add("repair orders", repair.running)
    server.ami_listeners.append(crew_notifier.on_ami)
    leader.add("crew calls", crew_notifier.running)
    return Loop(sms, outages, repair, attacher)
