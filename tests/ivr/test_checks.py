"""Tree loading errors and whole-tree checks, each reported as `file:line: message`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctiserver.configfile import ConfigError
from ctiserver.ivr.checks import check_tree
from ctiserver.ivr.tree import load_tree

from .helpers import SAMPLE_CONFIG, tree_from


def problems(text: str, sounds: list[Path] | None = None) -> list[str]:
    return [str(p) for p in check_tree(tree_from(text), sounds or [], hours=["business_hours"])]


def test_sample_tree_is_clean() -> None:
    lt = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    assert check_tree(lt, [], skills=["billing", "fault", "business"]) == []


def test_unknown_skill_against_the_acd() -> None:
    lt = load_tree(SAMPLE_CONFIG / "ivr" / "hotline.yaml")
    found = [str(p) for p in check_tree(lt, [], skills=["billing", "fault"])]
    assert len(found) == 1 and "skill 'business' is not an ACD skill" in found[0]


def test_tiers_against_the_acd() -> None:
    lt = tree_from("""
    start: q
    default_tier: standard
    nodes:
      q: {kind: queue, skill: billing, tier: platinum}
      r: {kind: queue, skill: billing, tier: "{customer.tier}"}
    """)
    found = [str(p) for p in check_tree(lt, [], tiers=["vip", "normal"])]
    assert found[0] == "t.yaml:3: default_tier 'standard' is not an ACD tier (normal, vip)"
    assert found[1] == "t.yaml:5: node 'q': tier 'platinum' is not an ACD tier (normal, vip)"
    assert len([p for p in found if "ACD tier" in p]) == 2  # a template tier is checked at run time


def test_load_errors_point_at_lines() -> None:
    with pytest.raises(ConfigError) as err:
        tree_from("""\
        start: a
        nodes:
          a:
            kind: menu
            prompt: "hi"
            options: {"1": b, "12": b}
            retries: -1
          b:
            kind: hangupp
          c:
            kind: play
            next: a
          d:
            kind: collect
            prompt: "x"
            var: acct
            min_digits: 5
            max_digits: 3
            pattern: "[0-9"
            next: a
          e: {kind: lookup, provider: crm, next: a}
          f: {kind: play, prompt: "欠费{account.arrears", next: a}
          g: {kind: menu, prompt: "x", options: {"1": a}, colour: red}
        """)
    lines = str(err.value).splitlines()
    text = "\n".join(lines)
    assert lines[0] == "t.yaml:6: nodes.a.options: option key '12' must be one keypad key (0-9, * or #)"
    assert "t.yaml:7: nodes.a.retries: Input should be greater than or equal to 0" in text
    assert "t.yaml:9: nodes.b: unknown node kind" in text
    assert "t.yaml:10: missing required key 'nodes.c.prompt'" in text
    assert "t.yaml:19: nodes.d.pattern: pattern is not a regular expression" in text
    assert any(line.startswith("t.yaml:21: nodes.e: unknown provider 'crm'") for line in lines)
    assert any(line.startswith("t.yaml:22: nodes.f.prompt: text: unclosed '{'") for line in lines)
    assert "t.yaml:23: unknown key 'colour' in nodes.g" in text


def test_collect_lengths_checked() -> None:
    with pytest.raises(ConfigError, match=r"^t.yaml:4: nodes.d: min_digits is greater than max_digits$"):
        tree_from("""\
        start: d
        nodes:
          z: {kind: hangup}
          d:
            kind: collect
            prompt: "x"
            var: acct
            min_digits: 5
            max_digits: 3
            next: z
        """)


def test_syntax_error_and_empty_file() -> None:
    with pytest.raises(ConfigError, match=r"^t.yaml:4: YAML syntax error: expected ',' or '}', but got ':' "
                       r"\(while parsing a flow mapping on line 3\)"):
        tree_from("start: a\nnodes:\n  a: {kind: play\n  b: 1\n")
    with pytest.raises(ConfigError, match=r"^t.yaml:1: file is empty"):
        tree_from("")


def test_unknown_references_with_a_hint() -> None:
    found = problems("""
    start: mian
    nodes:
      main:
        kind: menu
        prompt: "x"
        options: {"1": bye, "2": byee}
      bye: {kind: hangup}
    """)
    assert found[0] == "t.yaml:2: start: unknown node 'mian'"
    assert found[1] == "t.yaml:7: node 'main' refers to unknown node 'byee' (did you mean 'bye'?)"


def test_unreachable_nodes() -> None:
    found = problems("""
    start: a
    nodes:
      a: {kind: play, prompt: "x", next: z}
      lonely: {kind: hangup}
      z: {kind: hangup}
    """)
    assert found == ["t.yaml:5: node 'lonely' cannot be reached from start 'a'"]


def test_digit_collisions() -> None:
    found = problems("""
    start: m
    nodes:
      m:
        kind: menu
        prompt: "x"
        options:
          1: a
          "1": b
          "0": a
      a: {kind: hangup}
      b: {kind: hangup}
      r: {kind: rating, prompt: "rate", next: a}
    """.replace('      r:', '      r:').replace("next: a}\n", "next: a}\n", 1))
    assert "t.yaml:9: menu 'm': key '1' is used twice (also on line 8)" in found
    assert "t.yaml:10: menu 'm': option '0' hides the agent key (set agent_key: false on the node, or use " \
           "another key)" in found


def test_rating_scale_colliding_with_agent_key() -> None:
    found = problems("""
    start: r
    agent: {key: "3"}
    nodes:
      r: {kind: rating, prompt: "rate"}
    """)
    assert found == ["t.yaml:5: rating 'r': the agent key '3' is also a rating"]


def test_loops_with_no_exit() -> None:
    found = problems("""
    start: m
    agent: {enabled: false}
    nodes:
      m:
        kind: menu
        prompt: "x"
        options: {"1": p}
        on_exhausted: m
      p: {kind: play, prompt: "y", next: m}
    """)
    assert found == [
        "t.yaml:5: node 'm' is in a loop with no exit: no path from it hangs up or reaches an agent",
        "t.yaml:10: node 'p' is in a loop with no exit: no path from it hangs up or reaches an agent",
    ]


def test_loop_without_caller_input() -> None:
    found = problems("""
    start: a
    nodes:
      a: {kind: play, prompt: "x", next: b}
      b: {kind: lookup, provider: outages, args: {area: "x"}, next: a, on_error: z}
      z: {kind: hangup}
    """)
    assert found == ["t.yaml:4: loop without caller input: a -> b"]


def test_branch_counting_visits_is_not_a_loop_error() -> None:
    assert problems("""
    start: a
    nodes:
      a: {kind: play, prompt: "x", next: b}
      b:
        kind: branch
        cases: [{when: {field: visits.a, op: ge, value: 3}, next: z}]
        default: a
      z: {kind: hangup}
    """) == []


def test_unknown_template_fields() -> None:
    found = problems("""
    start: who
    nodes:
      who:
        kind: lookup
        provider: customer_by_caller
        args: {number: "{calller}"}
        next: say
      say:
        kind: play
        prompt:
          zh: "{customer.nmae}您好，欠费{account.arrears}元"
          en: "Hello {input.acct} {vars.x} {visits.who} {caller}"
        next: bye
      bye:
        kind: branch
        cases: [{when: {field: outage.active, op: true}, next: end}, {when: {hours: office}, next: end}]
        default: end
      end: {kind: hangup}
    """)
    text = "\n".join(found)
    assert "t.yaml:7: node 'who' args.number: unknown field 'calller'" in text
    assert "t.yaml:12: node 'say' prompt: unknown field 'customer.nmae': 'nmae' (not a field of it) " \
           "(did you mean 'name'?)" in text
    assert "t.yaml:12: node 'say' prompt: unknown field 'account.arrears' ('account' is none of" in text
    assert "t.yaml:13: node 'say' prompt: unknown field 'input.acct': 'acct' (no collect node sets it)" in text
    assert "t.yaml:13: node 'say' prompt: unknown field 'vars.x'" in text
    assert "visits.who" not in text and "'caller'" not in text
    assert "t.yaml:17: node 'bye': unknown field 'outage.active'" in text
    assert "t.yaml:17: node 'bye': unknown hours set 'office' (calendar.yaml hours: business_hours)" in text


def test_account_lookup_needs_on_unverified() -> None:
    found = problems("""
    start: a
    nodes:
      a: {kind: lookup, provider: account, args: {account: "1"}, next: z}
      z: {kind: hangup}
    """)
    assert found == ["t.yaml:4: node 'a': provider 'account' is an account query; set on_unverified (where "
                     "callers go before the identity check)"]


def test_missing_sound_files(tmp_path: Path) -> None:
    (tmp_path / "zh" / "cti-custom").mkdir(parents=True)
    (tmp_path / "zh" / "cti-custom" / "hello.wav").write_bytes(b"RIFF")
    text = """
    start: a
    nodes:
      a: {kind: play, prompt: {file: "cti-custom/hello"}, next: b}
      b: {kind: play, prompt: {file: "cti-custom/{lang}/bye"}, next: z}
      z: {kind: hangup}
    """
    found = problems(text, [tmp_path])
    assert found == [f"t.yaml:5: node 'b': sound file 'cti-custom/en/bye' not found in {tmp_path}",
                     f"t.yaml:5: node 'b': sound file 'cti-custom/zh/bye' not found in {tmp_path}"]
