"""Every error the AMI layer raises, in one place (in the manner of httpx `_exceptions`).

    AmiError
    ├── AmiFieldMissing      a header the caller required is not in the frame (also a KeyError)
    ├── AmiActionError       an action we were asked to send is unsafe or malformed (also a ValueError)
    ├── AmiDisconnected      no session, or the session dropped before the reply came
    ├── AmiTimeout           no reply within the action timeout (also a TimeoutError)
    ├── AmiLoginError        Asterisk refused our username/secret
    └── AmiResponseError     Asterisk answered `Response: Error` (raised only on request)

Messages never contain field values: a value may be a secret or a caller's data.
"""

from __future__ import annotations


class AmiError(Exception):
    """Base of every AMI layer error."""


class AmiFieldMissing(AmiError, KeyError):
    def __init__(self, name: str, frame: str) -> None:
        self.name = name
        self.frame = frame
        super().__init__(f"{frame} has no {name!r} header")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class AmiActionError(AmiError, ValueError):
    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"AMI action field {field!r}: {problem}")


class AmiDisconnected(AmiError):
    """The action was not sent, or its session ended before the reply; it is never re-sent.

    `action_id` is set when the action did go out (Asterisk may have acted on it:
    reconcile an Originate by its ChannelId or by this ActionID)."""

    def __init__(self, message: str, action_id: str | None = None) -> None:
        self.action_id = action_id
        super().__init__(message)


class AmiTimeout(AmiError, TimeoutError):
    """No reply in time; the action went out as `action_id` and is never re-sent."""

    def __init__(self, message: str, action_id: str | None = None) -> None:
        self.action_id = action_id
        super().__init__(message)


class AmiLoginError(AmiError):
    pass


class AmiResponseError(AmiError):
    def __init__(self, action: str, message: str) -> None:
        self.action = action
        self.message = message
        super().__init__(f"{action} failed: {message}")
