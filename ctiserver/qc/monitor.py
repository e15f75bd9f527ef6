"""Live monitoring: a supervisor listens to, whispers to or barges into an agent's call through their own
softphone. AMI Originate rings the supervisor's endpoint; when they answer, Asterisk runs
`ChanSpy(<the agent's channel>,<options>)` on that channel:

    listen   q E      the supervisor hears both sides; nobody hears the supervisor
    whisper  q w E    the supervisor hears both; only the agent hears the supervisor (coaching)
    barge    q B E    three-way: both hear the supervisor

`q`: no beep or channel name announced to the supervisor; `E`: ChanSpy ends when the agent's channel
hangs up. Each start is a `monitor` event; the agent's desktop is told ("being monitored") only when
recording.yaml's `monitoring.show_agent` says so."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from ..events import Event, Kind
from ..recording.config import Monitoring
from ..web.auth import Sessions
from ..web.errors import ApiError
from ..web.openapi import Operation, Reply, documented
from ..web.routing import read_body
from ..web.schemas import Body

Mode = Literal["listen", "whisper", "barge"]
OPTIONS: dict[str, str] = {"listen": "qE", "whisper": "qwE", "barge": "qBE"}
SUPERVISORS = frozenset({"supervisor", "admin"})
_PHONE = r"^[A-Za-z0-9_]{1,40}$"
_CHANNEL = re.compile(r"^[A-Za-z0-9/_@.;-]{1,120}$")


class MonitorIn(Body):
    agent: str = Field(pattern=r"^[A-Za-z0-9_]{1,40}$", description="the agent whose call to join")
    mode: Mode
    phone: str | None = Field(default=None, pattern=_PHONE,
                              description="the supervisor's phone (fills {phone} of monitoring.dial); "
                                          "absent: their login")


class MonitorOut(BaseModel):
    id: str = Field(description="our Originate's ChannelId")
    agent: str
    mode: Mode
    channel: str = Field(description="the agent's channel being spied on")
    dial: str = Field(description="what Asterisk rings for the supervisor")


def spy_originate(dial: str, agent_channel: str, mode: Mode, channel_id: str, timeout_s: int,
                  caller_id: str) -> dict[str, str]:
    """The AMI Originate fields (pure; every value checked: nothing a user typed reaches AMI unchecked)."""
    if not _CHANNEL.match(agent_channel) or not _CHANNEL.match(dial):
        raise ValueError("not a channel name")
    return {"Channel": dial, "Application": "ChanSpy", "Data": f"{agent_channel},{OPTIONS[mode]}",
            "Timeout": str(timeout_s * 1000), "CallerID": caller_id, "Async": "true", "ChannelId": channel_id}


def agent_channel(channels: Iterable[str], agent: str, agent_of: Callable[[str], str | None]) -> str | None:
    """The agent's live channel (the newest, when a transfer left two), or None."""
    mine = [c for c in channels if agent_of(c) == agent and not (c.startswith("Local/") and c.endswith(";2"))]
    return mine[-1] if mine else None


def add_monitor_routes(app: web.Application, *, cfg: Monitoring, sessions: Callable[[], Sessions],
                       channels: Callable[[], list[tuple[str, str]]], ami: dict[str, Any],
                       agent_of: Callable[[str], str | None], emit: Callable[[Event], None],
                       now: Callable[[], float], tell_agent: Callable[[str, dict[str, Any]], None]) -> None:
    """POST /api/monitor. `channels()`: (Asterisk name, channel) of every live channel."""

    @documented(Operation(summary="Listen to, whisper to or barge into an agent's live call (the supervisor's "
                                  "phone rings; answering it joins the call)", tags=("monitoring",),
                          roles=SUPERVISORS, body=MonitorIn, replies={200: Reply("ringing the supervisor",
                                                                                  MonitorOut)},
                          errors={404: "not-on-a-call: the agent has no live call",
                                  409: "monitoring-off: recording.yaml monitoring.enabled is false",
                                  503: "asterisk-unavailable: the agent's Asterisk did not take the Originate"},
                          operation_id="monitor_call"))
    async def monitor(request: web.Request) -> web.Response:
        user = await sessions().require(request, SUPERVISORS)
        if not cfg.enabled:
            raise ApiError(409, "monitoring-off", "live monitoring is switched off (recording.yaml)")
        body: MonitorIn = await read_body(request, MonitorIn, 4096)
        live = channels()
        found = None
        for server, chan in reversed(live):
            if agent_channel([chan], body.agent, agent_of):
                found = (server, chan)
                break
        if found is None:
            raise ApiError(404, "not-on-a-call", f"agent {body.agent} has no live call")
        server, chan = found
        phone = body.phone or user.agent_no
        dial = cfg.dial.format(phone=phone)
        channel_id = f"spy-{secrets.token_hex(8)}"
        fields = spy_originate(dial, chan, body.mode, channel_id, cfg.ring_timeout_s,
                               f'"{body.mode} {body.agent}" <{body.agent}>')
        client = ami.get(server)
        try:
            if client is None:
                raise RuntimeError(f"no AMI link {server}")
            (await client.action("Originate", fields, timeout=5.0)).raise_for_error("Originate")
        except Exception as exc:
            raise ApiError(503, "asterisk-unavailable", f"could not ring {dial}: {exc}") from None
        emit(Event(Kind.MONITOR, now(), agent_id=body.agent, server=server,
                   data={"mode": body.mode, "supervisor": user.agent_no, "phone": phone, "action": "start",
                         "channel": chan, "id": channel_id}))
        if cfg.show_agent:
            tell_agent(body.agent, {"mode": body.mode, "by": user.agent_no})
        return web.json_response({"id": channel_id, "agent": body.agent, "mode": body.mode, "channel": chan,
                                  "dial": dial})

    app.router.add_post("/api/monitor", monitor)
