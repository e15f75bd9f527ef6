"""A session's call id and resume place come as AGI arguments from cti-agi; an older dialplan is asked."""

from __future__ import annotations

from ctiserver.agi.channel import AgiReply, linked_id, resume_place


class _Chan:
    path = "ivr"

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers
        self.sent: list[str] = []

    async def execute(self, command: str) -> AgiReply:
        self.sent.append(command)
        return AgiReply(200, "1", {"GET VARIABLE CHANNEL(linkedid)": "1700000000.7",
                                   "GET VARIABLE CTI_RESUME": "2"}[command])


async def test_the_arguments_cost_no_command() -> None:
    chan = _Chan({"agi_arg_1": "pbx2-1700000000.9", "agi_arg_2": "resume="})
    assert (await linked_id(chan), await resume_place(chan)) == ("pbx2-1700000000.9", "")
    chan = _Chan({"agi_arg_1": "1700000000.9", "agi_arg_2": "resume=3"})
    assert (await linked_id(chan), await resume_place(chan)) == ("1700000000.9", "3")
    assert chan.sent == []


async def test_a_dialplan_without_them_is_asked() -> None:
    chan = _Chan({"agi_uniqueid": "1700000000.8"})
    assert (await linked_id(chan), await resume_place(chan)) == ("1700000000.7", "2")
    assert chan.sent == ["GET VARIABLE CHANNEL(linkedid)", "GET VARIABLE CTI_RESUME"]
    odd = _Chan({"agi_arg_1": "1700000000.9 (x)", "agi_arg_2": "3"})  # not what cti-agi passes
    assert (await linked_id(odd), await resume_place(odd)) == ("1700000000.7", "2")
