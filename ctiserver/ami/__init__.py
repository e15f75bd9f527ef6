"""Our thin, correct layer over Asterisk's AMI (see client.py for why not panoramisk's Manager).

    from ctiserver.ami.client import AmiClient
    client = AmiClient(server_cfg, on_event=tracker_feed, on_connect=resync, on_disconnect=lost)
    await client.start()                       # returns at once; reconnects forever
    resp = await client.action("CoreShowChannels")
    resp.raise_for_error("CoreShowChannels")   # an Error response is returned, not raised
    for ev in resp.events: ...                 # list members, up to and including ...Complete
    await client.action("Originate", {"Channel": "Local/1@x", "ChannelId": my_id, "Async": "true",
                                      "Variable": variables({"CAMPAIGN": "c1"})})   # never re-sent
    await client.close()

Modules: framing (bytes -> AmiMessage, sans-IO), message (AmiMessage), actions (encode_action),
client (AmiClient), errors (the exception tree). The package exports the sans-IO parts only, so a pure
core that reads an AmiMessage does not load the client's sockets: import AmiClient from `ami.client`.
"""

from .actions import encode_action, variables
from .errors import (
    AmiActionError,
    AmiDisconnected,
    AmiError,
    AmiFieldMissing,
    AmiLoginError,
    AmiResponseError,
    AmiTimeout,
)
from .framing import AmiFramer
from .message import AmiMessage

__all__ = [
    "AmiActionError",
    "AmiDisconnected",
    "AmiError",
    "AmiFieldMissing",
    "AmiFramer",
    "AmiLoginError",
    "AmiMessage",
    "AmiResponseError",
    "AmiTimeout",
    "encode_action",
    "variables",
]
