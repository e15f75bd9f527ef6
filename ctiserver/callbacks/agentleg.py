"""A callback's agent leg: the Originate that rings the agent, and what the leg does once they answer.

    Originate (Async, our ChannelId) ─▶ agent's phone ─answer─▶ dialplan [acd-callback] ─AGI /callback─▶
    whisper to the agent (and the caller's voicemail, if they left one) ─▶ Dial the customer ─▶ the try's outcome

If the CTI is gone when the agent answers, the dialplan dials the customer itself with CB_DIAL and CB_RING.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..acd.model import Offer
from ..agi.channel import AgiChannel, AgiError, AgiHangup
from ..clock import Clock
from ..dialplan import record_on_answer
from ..outbound.dialer import safe_value
from ..outbound.model import AcdCallbackConfig, OutboundConfig
from .rules import REACHED, dial_outcome, whisper_text

Say = Callable[[AgiChannel, str, str], Awaitable[None]]  # (channel, text, language)
WHISPER_LANG = "zh"  # whispers are for the agent (outbound.yaml writes them in Mandarin), not the customer


def originate_agent_leg(cfg: OutboundConfig, policy: AcdCallbackConfig, offer: Offer, agent_dial: str, row_id: int,
                        channel: str, agi: str | None) -> dict[str, Any]:
    """The AMI Originate that rings the agent the ACD offered the callback `row_id` to, as `channel`."""
    number = offer.number or offer.caller
    fields: dict[str, Any] = {
        "Channel": agent_dial,
        "Context": policy.context, "Exten": "s", "Priority": "1",
        "Timeout": str(int(offer.ring_timeout_s * 1000)),
        "CallerID": f'"CB {safe_value(number)}" <{safe_value(number)}>',
        "Async": "true", "ChannelId": channel,
        "Variable": [f"{k}={safe_value(v)}" for k, v in {
            "CB_ID": str(row_id), "CB_CALL": offer.call_id, "CB_AGENT": offer.agent_id,
            "CB_NUMBER": number, "CB_DIAL": cfg.dial.channel.format(number=number),
            "CB_RING": str(round(policy.customer_ring_s))}.items()],
    }
    if agi:  # "host:port" of our FastAGI, so the agent's leg comes back to us (else the dialplan's global)
        fields["Variable"].append(f"CTI_AGI={safe_value(agi)}")
    return fields


async def dial_customer(chan: AgiChannel, cfg: OutboundConfig, policy: AcdCallbackConfig, say: Say | None,
                        clock: Clock, number: str, reason: str, recording: str = "", skill: str = "", *,
                        agent_id: str = "", answered: Callable[[], bool]) -> str:
    """Whisper to the agent (and play the caller's voicemail, if they left one), then Dial the customer from
    the agent's leg; the try's outcome. `answered()`: AMI DialEnd said the customer answered this leg.
    The call is recorded from the customer's leg once they answer (`far`: the agent is the caller here),
    so neither the whisper nor the ring is, and a customer who never answers leaves no files."""
    started = clock.now()
    try:
        template = cfg.callbacks.whisper if reason == "workorder" else policy.whisper
        text = whisper_text(template, number, reason, skill)
        if text and say is not None:
            await say(chan, text, WHISPER_LANG)
        if recording:
            await chan.execute(f'STREAM FILE {safe_value(recording)} ""')
        started = clock.now()
        await chan.execute(f"EXEC Dial {cfg.dial.channel.format(number=number)},{round(policy.customer_ring_s)},"
                           f"{record_on_answer(agent_id, far=True)}")
        return dial_outcome((await chan.execute("GET VARIABLE DIALSTATUS")).data)
    except AgiHangup:
        # the agent's phone hung up: after talking (AMI DialEnd said ANSWER), or before the customer
        if answered():
            return REACHED
        if clock.now() - started >= policy.customer_ring_s:
            return "no_answer"
        return "agent_hangup"


async def set_done(chan: AgiChannel) -> None:
    """CTI_DONE: the dialplan does not dial the customer itself (we did, or there is nobody to call)."""
    try:
        await chan.execute("SET VARIABLE CTI_DONE 1")
    except (AgiHangup, AgiError, TimeoutError):
        pass
