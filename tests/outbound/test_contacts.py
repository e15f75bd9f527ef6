"""CSV contact lists: number formats, bad rows reported by row number, nothing half-imported."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from ctiserver.numbers import NumberError, normalise_number
from ctiserver.outbound.contacts import (
    CustomerTarget,
    ImportRejected,
    apply_class_windows,
    parse_csv,
    stratified_sample,
    targets_to_contacts,
)
from ctiserver.outbound.model import CampaignSpec, ContactIn
from ctiserver.outbound.store import OutboundError, OutboundStore


@pytest.mark.parametrize(("raw", "expected"), [
    ("13812345678", "13812345678"),
    ("138 1234 5678", "13812345678"),
    ("+86 138-1234-5678", "13812345678"),
    ("008613812345678", "13812345678"),
    ("8613812345678", "13812345678"),
    ("１３８１２３４５６７８", "13812345678"),  # full-width digits from a Chinese spreadsheet
    ("010-62345678", "01062345678"),
    ("(021) 5123 4567", "02151234567"),
    ("0755-8123456", "07558123456"),
    ("0755-81234567", "075581234567"),
    ("+86 21 5123 4567", "02151234567"),  # international form drops the area code's trunk 0
    ("0086 755 8123 4567", "075581234567"),
    ("013812345678", "13812345678"),  # a mobile presented with a trunk 0
])
def test_good_numbers_are_normalised(raw: str, expected: str) -> None:
    assert normalise_number(raw) == expected


@pytest.mark.parametrize(("raw", "why"), [
    ("", "empty"),
    ("1381234567", "mobile"),
    ("12812345678", "mobile"),
    ("95598", "not a subscriber"),
    ("62345678", "without its area code"),
    ("010-1234567", "landline"),  # Beijing numbers have 8 digits
    ("0755-0123456", "landline"),
    ("+1 415 555 0100", "not a Chinese number"),
    ("138abc45678", "not digits"),
    ("١٣٨١٢٣٤٥٦٧٨", "not digits 0-9"),  # Arabic-Indic digits: str.isdigit() says yes
    ("१३८१२३४५६७८", "not digits 0-9"),  # Devanagari
    ("138١٢٣٤٥٦٧٨", "not digits 0-9"),  # mixed
])
def test_bad_numbers_say_why(raw: str, why: str) -> None:
    with pytest.raises(NumberError, match=why):
        normalise_number(raw)


GOOD = "number,name,area,important,quiet\n13800000001,张三,城东,是,12:00-14:00\n010-62345678,李四,城西,,\n"


def test_clean_file_imports_with_chinese_headers_and_gb18030() -> None:
    text = "电话,户名,户号,台区,重要客户\n13800000001,张三,0001,城东,是\n13800000002,李四,0002,城东,否\n"
    report = parse_csv(text.encode("gb18030"), "outage_notice")
    assert [(c.number, c.name, c.account, c.area, c.priority) for c in report.accepted] == [
        ("13800000001", "张三", "0001", "城东", 10), ("13800000002", "李四", "0002", "城东", 0)]
    report = parse_csv(("\ufeff" + GOOD).encode(), "outage_notice")  # Excel's UTF-8 BOM
    assert report.accepted[0].quiet == "12:00-14:00" and report.accepted[1].number == "01062345678"


def test_bad_rows_are_reported_with_row_numbers_and_nothing_is_accepted() -> None:
    text = ("number,name,priority,quiet\n"
            "13800000001,ok,1,\n"           # row 2
            "1380000000,short,1,\n"         # row 3
            "13800000001,dup,1,\n"          # row 4
            "13800000004,x,high,\n"         # row 5
            "13800000005,x,1,25:00-26:00\n"  # row 6
            "13800000006,too,many,fields,here\n"  # row 7
            "\n"                             # row 8: blank, ignored
            '"13800000009","multi\nline",1,\n'  # rows 9-10: one record over two lines
            "13800000011,ok,1,\n")          # row 11
    with pytest.raises(ImportRejected) as info:
        parse_csv(text, "survey")
    errors = [(p.row, p.reason) for p in info.value.report.errors]
    assert [row for row, _ in errors] == [3, 4, 5, 6, 7, 9]
    assert "mobile" in errors[0][1]
    assert errors[1][1] == "duplicate of row 2 (13800000001)"
    assert "priority 'high'" in errors[2][1]
    assert "HH:MM" in errors[3][1]
    assert "5 fields, the header has 4" in errors[4][1]
    assert "runs over rows 9-10" in errors[5][1]  # no column may hold a line break
    assert "row 3:" in str(info.value)
    report = parse_csv(text, "survey", skip_bad=True)
    assert [c.number for c in report.accepted] == ["13800000001", "13800000011"]


def test_an_unclosed_quote_is_reported_not_merged_into_one_contact() -> None:
    """Issue 12 item 10: the quote opened in row 3 swallowed rows 4-6; 1 contact was imported, exit 0."""
    text = ("number,name\n"
            "13800000001,张三\n"
            '13800000002,"李四\n'  # row 3: the quote is never closed
            "13800000003,王五\n"
            "13800000004,赵六\n"
            "13800000005,钱七\n")
    with pytest.raises(ImportRejected) as info:
        parse_csv(text, "survey")
    [problem] = info.value.report.errors
    assert problem.row == 3 and "never closed: rows 3-6" in problem.reason
    report = parse_csv(text, "survey", skip_bad=True)  # the good row before it; the lost rows are named
    assert [c.number for c in report.accepted] == ["13800000001"]
    with pytest.raises(ImportRejected, match=r"row 3: unreadable CSV"):  # a stray quote inside a field
        parse_csv('number,name\n13800000001,a\n13800000002,"b"c\n13800000003,d\n', "survey")


def test_non_ascii_digits_never_become_a_number_that_slips_past_the_lists() -> None:
    """Issue 12 item 10: Arabic-Indic digits were accepted, stored as such and missed the DNC list."""
    text = "number\n١٣٨٠٠٠٠٠٠٠١\n13800000002\n"
    with pytest.raises(ImportRejected, match=r"row 2: .* not digits 0-9"):
        parse_csv(text, "survey", excluded={"13800000001": "dnc"})
    report = parse_csv(text, "survey", excluded={"13800000001": "dnc"}, skip_bad=True)
    assert [c.number for c in report.accepted] == ["13800000002"]
    report = parse_csv("number\n１３８０００００００１\n", "survey", excluded={"13800000001": "dnc"})
    assert report.accepted == [] and report.excluded[0].number == "13800000001"  # full-width: same number


@pytest.mark.parametrize(("column", "value", "why"), [
    ("name", "张\u0085三", "U+0085"),  # NEL: a line break to some terminals (quoted CR/LF: see above)
    ("name", "张三\x1b[2J\x1b[H", "U+001B"),
    ("account", "0001\x07", "U+0007"),
    ("area", "城东\u009b31m", "U+009B"),  # C1 CSI: a terminal escape in one character
    ("area", "城东\u2028", "line break"),
    ("note", "hi\x7f", "U+007F"),
])
def test_no_column_may_hold_control_characters(column: str, value: str, why: str) -> None:
    text = f"number,{column}\n13800000001,{value}\n"
    with pytest.raises(ImportRejected) as info:
        parse_csv(text, "survey")
    [problem] = info.value.report.errors
    assert problem.row == 2 and f"'{column}' contains" in problem.reason and why in problem.reason


def test_do_not_call_and_blacklist_are_excluded_not_errors() -> None:
    text = "number\n13800000001\n13800000002\n13800000003\n"
    report = parse_csv(text, "survey", excluded={"13800000001": "dnc", "13800000003": "blacklist"})
    assert [c.number for c in report.accepted] == ["13800000002"]
    assert [(p.row, p.reason) for p in report.excluded] == [
        (2, "13800000001 is on the do-not-call list"), (4, "13800000003 is blacklisted")]


def test_numbers_already_in_the_campaign_are_bad_rows() -> None:
    with pytest.raises(ImportRejected, match="row 2: 13800000001 is already in this campaign"):
        parse_csv("number\n13800000001\n", "survey", existing={"13800000001"})


def test_arrears_rows_need_their_amounts() -> None:
    header = "number,account,billing_month,arrears,due_date,customer_class\n"
    good = "13800000001,0001,2026-10,\"1,234.50\",2026-11-15,business\n"
    report = parse_csv(header + good, "arrears_reminder")
    assert report.accepted[0].variables == {"billing_month": "2026-10", "arrears": "1234.50",
                                            "due_date": "2026-11-15", "customer_class": "business"}
    bad = ("13800000002,,2026-10,10,2026-11-15,residential\n"
           "13800000003,0003,2026-10,-5,2026-11-15,residential\n"
           "13800000004,0004,2026-10,5,15/11/2026,residential\n"
           "13800000005,0005,2026-10,5,2026-11-15,factory\n")
    with pytest.raises(ImportRejected) as info:
        parse_csv(header + bad, "arrears_reminder")
    reasons = [p.reason for p in info.value.report.errors]
    assert "'account' is required" in reasons[0]
    assert "non-negative" in reasons[1]
    assert "YYYY-MM-DD" in reasons[2]
    assert "residential or business" in reasons[3]


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("name,area\nx,y\n", "no phone number column"),
    ("number,number\n1,2\n", "appears twice"),
    ("number,bad header!\n1,2\n", "not a known column"),
    ("number\n13800000001\x00\n", "NUL"),
])
def test_unusable_files_are_refused_whole(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_csv(text, "survey")


def test_undecodable_bytes_are_refused() -> None:
    with pytest.raises(ValueError, match="neither UTF-8 nor GB18030"):
        parse_csv(b"number\n\xff\xff\xff\n", "survey")


def test_customer_targets_go_through_the_same_checks() -> None:
    targets = [
        CustomerTarget("0001", "张三", "13800000001", "城东", important=True, tier="vip"),
        CustomerTarget("0002", "李四", "123", "城东"),
        CustomerTarget("0003", "王五", "13800000003", "城东"),
    ]
    report = targets_to_contacts(targets, "outage_notice", excluded={"13800000003": "dnc"})
    assert [(c.account, c.priority, c.tier) for c in report.accepted] == [("0001", 10, "vip")]
    assert [p.row for p in report.errors] == [2] and [p.row for p in report.excluded] == [3]
    arrears = [CustomerTarget("0004", "赵六", "13800000004", billing_month="2026-10",
                              arrears=Decimal("88.8"), due_date=date(2026, 11, 15))]
    [c] = targets_to_contacts(arrears, "arrears_reminder").accepted
    assert c.variables["arrears"] == "88.80" and c.variables["due_date"] == "2026-11-15"


async def test_store_import_is_all_or_nothing(store: OutboundStore) -> None:
    await store.create_campaign(CampaignSpec(name="s", kind="survey"), 0.0)
    await store.add_contacts("s", [ContactIn("13800000001")], 0.0)
    batch = [ContactIn(f"139{i:08d}") for i in range(2500)] + [ContactIn("13800000001")]
    with pytest.raises(OutboundError, match="nothing was imported"):
        await store.add_contacts("s", batch, 0.0)
    assert await store.numbers_in("s") == {"13800000001"}
    assert await store.add_to_list(["13800000009", "13800000009"], "dnc", "asked", 0.0) == 1
    assert await store.excluded_numbers() == {"13800000009": "dnc"}


async def test_store_import_creates_campaign_and_contacts_in_one_transaction(store: OutboundStore) -> None:
    spec = CampaignSpec(name="t", kind="survey")
    with pytest.raises(OutboundError, match="nothing was imported"):  # the second row fails the insert
        await store.import_contacts(spec, [ContactIn("13800000001"), ContactIn("13800000001")], 0.0)
    assert [c.name for c in await store.campaigns()] == []  # no campaign left behind
    assert await store.import_contacts(spec, [ContactIn("13800000001")], 0.0) is True
    assert await store.import_contacts(spec, [ContactIn("13800000002")], 0.0) is False  # existed
    assert await store.numbers_in("t") == {"13800000001", "13800000002"}


def test_class_windows_become_quiet_hours_the_scheduler_respects() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from ctiserver.outbound.model import OutboundConfig
    from ctiserver.outbound.scheduler import CampaignView, Scheduler, Snapshot, contact_view

    people = [ContactIn("13800000001", variables={"customer_class": "business"}),
              ContactIn("13800000002", quiet="12:00-13:00"),
              ContactIn("13800000003", variables={"customer_class": "非居民"})]
    spec = CampaignSpec.model_validate({"name": "cb", "kind": "survey", "windows": ["08:00-22:00"],
                                        "pacing": {"burst": 5},
                                        "class_windows": {"business": "09:00-17:00",
                                                          "residential": "17:00-22:00"}})
    shaped = apply_class_windows(people, {str(k): v for k, v in spec.class_windows.items()})
    assert [p.quiet for p in shaped] == ["17:00-09:00", "12:00-13:00;22:00-17:00", "17:00-09:00"]
    tz = ZoneInfo("Asia/Shanghai")
    camp = CampaignView.from_spec(spec, "U", "running")

    def dialed_at(hour: int) -> list[str]:
        now = datetime(2026, 11, 23, hour, 0, tzinfo=tz).timestamp()
        views = [contact_view(i, "cb", p.number, "", "", 0, p.quiet, 0, 0.0) for i, p in enumerate(shaped, 1)]
        return [d.number for d in Scheduler(OutboundConfig()).plan(now, Snapshot([camp], views)).dials]

    assert dialed_at(10) == ["13800000001", "13800000003"]  # business hours: business customers
    assert dialed_at(19) == ["13800000002"]  # evening: residential
    assert dialed_at(22) == []  # never after 22:00
    with pytest.raises(ValueError, match="HH:MM"):
        CampaignSpec.model_validate({"name": "x", "kind": "survey", "class_windows": {"business": "9-5"}})


def test_stratified_sample_covers_every_area() -> None:
    people = ([ContactIn(f"1380000{i:04d}", area="城东") for i in range(100)]
              + [ContactIn(f"1390000{i:04d}", area="城西") for i in range(30)]
              + [ContactIn("13700000001", area="牧区")])
    sample = stratified_sample(people, 0.05, seed=1)
    assert Counter(p.area for p in sample) == {"城东": 5, "城西": 2, "牧区": 1}
    assert sample == stratified_sample(people, 0.05, seed=1)
    assert len(stratified_sample(people, 1.0)) == len(people)
    with pytest.raises(ValueError):
        stratified_sample(people, 0)


def test_a_contacts_language_column_is_kept_and_checked() -> None:
    text = "电话,户名,语言\n13800000001,张三,zh\n13800000002,Tom,EN\n13800000003,王五,\n"
    report = parse_csv(text, "outage_notice")
    assert [c.variables.get("language") for c in report.accepted] == ["zh", "en", None]
    with pytest.raises(ImportRejected) as info:
        parse_csv("number,language\n13800000001,fr\n", "outage_notice")
    assert [(p.row, p.reason) for p in info.value.report.errors] == [(2, "language 'fr' is not one of zh, en")]
