"""The runner's check of what the interpreter reports (program-controlled bytes), without Docker."""

from __future__ import annotations

import json

import pytest

from cellblock.sandbox._runner_session import CTL_MAX, FIGURES_MAX_BYTES, _parse_report


def report(**fields: object) -> bytes:
    base = {"id": 1, "outcome": "ok", "value": None, "exit_code": None, "figures": []}
    base.update(fields)
    return json.dumps(base).encode() + b"\n"


def test_complete_report_with_figures() -> None:
    data = report(figures=[3, 2]) + b"abcde"
    parsed, figures, problem, used = _parse_report(data)
    assert problem is None and parsed is not None and figures == [b"abc", b"de"]
    assert used == len(data)


def test_incomplete_is_not_a_problem() -> None:
    assert _parse_report(b'{"id": 1')[:3] == (None, [], None)
    assert _parse_report(report(figures=[10]) + b"abc")[:3] == (None, [], None)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"not json\n", "report is not JSON"),
        (b"[1, 2]\n", "report is not an object"),
        (report(outcome="forged"), "bad outcome"),
        (report(exit_code=999), "bad exit code"),
        (report(value=["x"]), "bad value"),
        (report(id="1"), "bad step id"),
        (report(figures=[FIGURES_MAX_BYTES + 1]), "bad figure list"),
        (report(figures=[-1]), "bad figure list"),
        (report(figures=[1] * 21), "bad figure list"),
        (b"x" * (CTL_MAX + 1), "report too large"),
    ],
)
def test_bad_reports_are_protocol_violations(data: bytes, problem: str) -> None:
    assert _parse_report(data)[2] == problem


def test_a_second_report_is_left_for_the_caller() -> None:
    first, second = report(id=7), report(id=8)
    parsed, _, _, used = _parse_report(first + second)
    assert parsed is not None and parsed["id"] == 7 and used == len(first)
