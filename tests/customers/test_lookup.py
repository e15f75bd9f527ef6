"""The pop's customer record from the IVR data tables plus the desktop's recent contacts."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert

from ctiserver.clock import FakeClock
from ctiserver.customers.data import SqlDataProvider, load_sample_data
from ctiserver.customers.lookup import IvrCustomerLookup
from ctiserver.store.engine import make_engine, migrate
from ctiserver.web.tables import dispositions
from tests.web.conftest import START

REPO = Path(__file__).resolve().parents[2]


async def test_record_outage_and_history(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    await migrate(url)
    engine = make_engine(url)
    try:
        await load_sample_data(engine, REPO / "config", now=START)
        async with engine.begin() as conn:
            await conn.execute(insert(dispositions), [
                {"ts": START - 3600, "agent_no": "1001", "category": "fault_repair", "note": "停电报修",
                 "resolved": False, "customer_account": "9100000001", "caller_number": "13800000001"},
                {"ts": START - 60, "agent_no": "1002", "category": "inquiry", "note": "someone else",
                 "resolved": True, "customer_account": "9100000002", "caller_number": "13800000002"}])
        lookup = IvrCustomerLookup(SqlDataProvider(engine), engine, FakeClock(START))
        rec = await lookup.by_phone("+8613800000001")
        assert rec is not None
        assert (rec["account"], rec["name"], rec["tier"], rec["area"]) == ("9100000001", "张建国", "vip", "城东区")
        assert rec["outage"]["kind"] == "fault" and "线路故障" in rec["outage"]["reason"]
        assert [h["note"] for h in rec["history"]] == ["停电报修"]
        assert "pin" not in str(rec).lower()
        by_acct = await lookup.by_account("9100000002")
        assert by_acct is not None and by_acct["arrears"] == 86.5
        assert await lookup.by_phone("13999999999") is None
        assert await lookup.by_account("0000") is None
    finally:
        await engine.dispose()
