"""Our thin, correct layer over Asterisk's AMI (see client.py for why not panoramisk's Manager)."""

from .actions import encode_action, variables
from .client import AmiClient, AmiResponse, ConnectInfo
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
    "AmiClient",
    "AmiDisconnected",
    "AmiError",
    "AmiFieldMissing",
    "AmiFramer",
    "AmiLoginError",
    "AmiMessage",
    "AmiResponse",
    "AmiResponseError",
    "AmiTimeout",
    "ConnectInfo",
    "encode_action",
    "variables",
]
