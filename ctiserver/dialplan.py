"""Names the CTI shares with `asterisk/extensions.conf` (the one place each is spelled in Python).

Recording starts in the dialplan, not over AMI (Asterisk files the AMI `MixMonitor` action under the
`system` class, which would also let the CTI's user read every config file): whoever dials an agent adds
`record_on_answer(agent)` to the Dial options, and `[cti-record]` runs MixMonitor on the answered leg
when `RECORD_DIR_VAR` (a global the recorder sets from config/recording.yaml) names a folder.
"""

from __future__ import annotations

import re

RECORD_GOSUB = "cti-record"  # [cti-record]: MixMonitor on an answered agent leg
RECORD_DIR_VAR = "CTI_RECORD_DIR"  # global: where MixMonitor writes; empty: recording is off
RECORD_USEREVENT = "CtiRecording"  # UserEvent(CtiRecording,Spool: <name>) once MixMonitor started

_AGENT = re.compile(r"^[A-Za-z0-9_]{1,40}$")


def record_on_answer(agent_id: str, *, far: bool = False) -> str:
    """The Dial option that records the called leg once answered: `U(cti-record^<agent>)`. `far`: the
    called leg is the customer's and the agent is the caller (an ACD callback), so the sides swap.
    An agent id that could not be a file name part records nothing (the dialplan checks it too)."""
    if not _AGENT.match(agent_id):
        return ""
    return f"U({RECORD_GOSUB}^{agent_id}{'^far' if far else ''})"
