"""encode_action: wire format, repeated Variable lines, and no way to inject a second action."""

from __future__ import annotations

import pytest

from ctiserver.ami.actions import encode_action, variables
from ctiserver.ami.errors import AmiActionError
from ctiserver.ami.framing import AmiFramer


def test_wire_format_with_variables_and_ints() -> None:
    data = encode_action("Originate", {
        "Channel": "Local/13800138000@outbound", "Timeout": 30000, "Async": True,
        "ChannelId": "cti-out-42", "Variable": variables({"CAMPAIGN": "电费提醒", "ATTEMPT": 2}),
    })
    assert data == (
        "Action: Originate\r\nChannel: Local/13800138000@outbound\r\nTimeout: 30000\r\nAsync: true\r\n"
        "ChannelId: cti-out-42\r\nVariable: CAMPAIGN=电费提醒\r\nVariable: ATTEMPT=2\r\n\r\n"
    ).encode()
    # and it reads back as one frame with both variables
    (msg,) = AmiFramer().feed(data.replace(b"Action:", b"Event:", 1))
    assert msg.get_all("Variable") == ("CAMPAIGN=电费提醒", "ATTEMPT=2")


@pytest.mark.parametrize("bad", ["x\r\nAction: Hangup", "x\nAction: Hangup", "x\r", "x\0y"])
def test_cr_lf_nul_in_a_value_is_rejected_naming_the_field(bad: str) -> None:
    with pytest.raises(AmiActionError) as err:
        encode_action("Originate", {"Channel": "Local/1@x", "CallerID": bad})
    assert err.value.field == "CallerID"
    assert "Hangup" not in str(err.value)  # the value is never echoed


def test_cr_lf_in_variables_keys_and_name_rejected() -> None:
    with pytest.raises(AmiActionError, match=r"Variable\[1\]"):
        encode_action("Originate", {"Variable": ["A=1", "B=2\r\n\r\nAction: Hangup"]})
    with pytest.raises(AmiActionError):
        variables({"NOTE": "line1\nline2"})
    with pytest.raises(AmiActionError):
        variables({"A=B": "x"})
    with pytest.raises(AmiActionError):
        encode_action("Originate", {"Bad\r\nKey": "x"})
    with pytest.raises(AmiActionError):
        encode_action("Ping\r\n\r\nAction: Hangup", {})
    with pytest.raises(AmiActionError):
        encode_action("", {})


def test_odd_keys_and_types_rejected() -> None:
    for fields in ({"": "x"}, {"Has Space": "x"}, {"Col:on": "x"}, {"Action": "Hangup"},
                   {"Timeout": 1.5}, {"Variable": ["A=1", 2]}):
        with pytest.raises(AmiActionError):
            encode_action("Originate", fields)  # type: ignore[arg-type]


async def test_panoramisk_would_have_sent_a_second_action() -> None:  # Action() needs a running loop
    """The defect we replace: panoramisk writes values as given."""
    from panoramisk.actions import Action

    wire = str(Action({"Action": "Originate", "CallerID": "x\r\n\r\nAction: Hangup\r\nChannel: PJSIP/1"}))
    assert wire.count("Action: ") == 2
