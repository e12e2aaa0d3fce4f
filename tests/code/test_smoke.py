"""Unit tests of the smoke check (review_sentiment/smoke.py) on canned outputs of its fresh
process, and of the week's routing rule (review_sentiment/routing.py) that turns its verdict, the
gate's and the drift into a branch and an outcome. Against the real servers:
tests/integration/test_smoke_on_servers.py."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from review_sentiment import names, smoke, task_ids
from review_sentiment.config import SMOKE_LATENCY_BUDGET_S, SMOKE_TOLERANCE, Settings
from review_sentiment.routing import Route, needs_smoke_check, route
from review_sentiment.smoke import SmokeResult, judge

THRESHOLD = 0.7
SAMPLE = [0.91, 0.12, 0.5, 0.999999, 0.0]
CASES = smoke.canned_reviews()


def measured(**changes: Any) -> dict[str, Any]:
    """What the fresh process reports for a sound version: the obvious reviews well on their
    side, the odd ones anywhere in [0, 1], register's sample scores, a fast batch."""
    scores = {c.name: {1: 0.98, 0: 0.03}.get(c.expect, 0.5) for c in CASES}
    found: dict[str, Any] = {
        "load_seconds": 12.0,
        "cases": {name: {"probability": [p]} for name, p in scores.items()},
        "sample": list(SAMPLE),
        "seconds_per_1000": 0.2,
    }
    for name, value in changes.pop("cases", {}).items():
        found["cases"][name] = value
    return {**found, **changes}


def test_a_sound_version_passes() -> None:
    assert judge(measured(), THRESHOLD, SAMPLE) == []


def test_the_canned_reviews_cover_what_the_issue_lists() -> None:
    by_name = {c.name: c for c in CASES}
    assert {c.name for c in CASES if c.expect == 1} == {"praise_dress", "praise_top"}
    assert {c.name for c in CASES if c.expect == 0} == {"complaint_fabric", "complaint_fit"}
    assert len(by_name["one_megabyte"].text) == smoke.LONG_REVIEW_CHARS == 1_000_000
    assert "&lt;" in by_name["html_entities"].text
    assert "&#" in by_name["html_entities"].text
    assert any(ord(ch) > 0x1F000 for ch in by_name["emoji"].text)
    assert not by_name["japanese"].text.isascii()
    assert "é" in by_name["french"].text
    # Empty after the model's own cleaning (letters only), though not empty as sent.
    from review_sentiment.cleaning_rules import PreprocessSettings
    from review_sentiment.preprocess import TextCleaner

    case = by_name["empty_after_cleaning"]
    assert case.text.strip()
    cleaner = TextCleaner(PreprocessSettings())
    assert cleaner.clean_many(pd.Series([case.text]), pd.Series([case.title])) == [""]


@pytest.mark.parametrize(
    ("changes", "failure"),
    [
        ({"cases": {"emoji": {"probability": [math.nan]}}}, "emoji: probability not finite (nan)"),
        ({"cases": {"empty": {"probability": [math.inf]}}}, "empty: probability not finite (inf)"),
        ({"cases": {"french": {"probability": [1.5]}}}, "french: probability outside [0, 1] (1.5)"),
        ({"cases": {"japanese": {"probability": [-0.01]}}}, "japanese: probability outside [0, 1]"),
        ({"cases": {"html_entities": {"probability": [None]}}}, "html_entities: probability not a number"),
        (
            {"cases": {"praise_top": {"probability": [0.69]}}},
            "praise_top: obvious praise scored 0.6900, below",
        ),
        (
            {"cases": {"complaint_fit": {"probability": [0.7]}}},
            "complaint_fit: obvious complaint scored 0.7000, at or above the threshold 0.7000",
        ),
        (
            {"cases": {"one_megabyte": {"error": "MemoryError: "}}},
            "one_megabyte: scoring failed: MemoryError",
        ),
        ({"cases": {"praise_dress": {"probability": [0.9, 0.9]}}}, "praise_dress: 2 scores for one review"),
        (
            {"sample": [*SAMPLE[:-1], 1e-5]},
            "test sample: 1 of 5 scores differ from register's by up to 1e-05",
        ),
        ({"sample": SAMPLE[:3]}, "test sample: 3 scores for 5 reviews"),
        ({"sample": [*SAMPLE[:-1], math.nan]}, "test sample: 1 of 5 probabilities not finite"),
        ({"seconds_per_1000": SMOKE_LATENCY_BUDGET_S + 0.01}, "latency: 5.01 s per 1,000 reviews, over"),
        ({"seconds_per_1000": None}, "latency: not measured"),
    ],
)
def test_each_kind_of_failure_is_found_and_named(changes: dict[str, Any], failure: str) -> None:
    failures = judge(measured(**changes), THRESHOLD, SAMPLE)
    assert len(failures) == 1, failures
    assert failures[0].startswith(failure), failures


def test_a_case_the_process_never_scored_fails() -> None:
    found = measured()
    del found["cases"]["emoji"]
    assert judge(found, THRESHOLD, SAMPLE) == ["emoji: not scored"]


def test_the_sample_must_agree_to_the_tolerance() -> None:
    close = [p + SMOKE_TOLERANCE / 2 for p in SAMPLE[:-1]] + [SAMPLE[-1]]
    assert judge(measured(sample=close), THRESHOLD, SAMPLE) == []
    assert SMOKE_TOLERANCE == 1e-6
    off = [p + 3 * SMOKE_TOLERANCE for p in SAMPLE[:2]] + SAMPLE[2:]
    (failure,) = judge(measured(sample=off), THRESHOLD, SAMPLE)
    assert "2 of 5 scores differ" in failure


def test_the_threshold_is_the_versions() -> None:
    """The same scores pass at one threshold and fail at another: the sides are the version's."""
    assert judge(measured(), 0.97, SAMPLE) == []
    (failure,) = judge(measured(cases={"praise_top": {"probability": [0.96]}}), 0.97, SAMPLE)
    assert "below the threshold 0.9700" in failure


def test_a_version_that_did_not_load_fails_with_the_error() -> None:
    failures = judge({"error": "MlflowException: model version 9 not found"}, THRESHOLD, SAMPLE)
    assert failures == ["the version did not load or score: MlflowException: model version 9 not found"]


def test_many_failures_stay_small_enough_for_xcom_and_a_tag() -> None:
    broken = measured(cases={c.name: {"error": "ValueError: " + "x" * 5000} for c in CASES})
    failures = judge(broken, THRESHOLD, SAMPLE)
    assert len(failures) == len(CASES)
    assert max(len(f) for f in failures) <= 240
    result = SmokeResult("7", smoke.FAILED, failures)
    assert len(result.reason) <= 1000
    assert len(str(result.to_dict())) < 4096


def test_the_result_as_xcom_and_as_tags() -> None:
    passed = SmokeResult("7", smoke.PASSED, [], seconds_per_1000=0.06, load_seconds=19.9)
    assert passed.to_dict() == {
        "version": "7", "status": "passed", "failures": [], "seconds_per_1000": 0.06, "load_seconds": 19.9,
        "note": "", "passed": True, "reason": passed.reason,
    }  # fmt: skip
    assert "0.06 s per 1,000 reviews" in passed.reason
    assert passed.to_tags() == {
        names.TAG_SMOKE_PASSED: "true",
        names.TAG_SMOKE_REASON: passed.reason,
        names.TAG_SMOKE_LATENCY: "0.0600",
    }
    failed = SmokeResult("7", smoke.FAILED, ["emoji: probability not finite (nan)", "latency: not measured"])
    assert (failed.passed, failed.reason) == (
        False,
        "emoji: probability not finite (nan); latency: not measured",
    )
    assert failed.to_tags()[names.TAG_SMOKE_PASSED] == "false"
    assert failed.to_tags()[names.TAG_SMOKE_LATENCY] == "none"


def test_a_refused_week_is_skipped_without_touching_mlflow() -> None:
    """Nothing to promote: no process, no MLflow call (the tracking URI here answers nothing)."""
    settings = Settings.from_env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    skipped = smoke.check_week({"version": "7", "passed": False}, forced=False, settings=settings)
    assert (skipped.status, skipped.passed) == ("skipped", False)
    assert skipped.to_dict()["reason"] == "not run: the gate refused the version"


def test_who_needs_a_smoke_check() -> None:
    assert needs_smoke_check({"passed": True}, forced=False)
    assert needs_smoke_check({"passed": False}, forced=True)
    assert not needs_smoke_check({"passed": False}, forced=False)


def test_the_sample_rows_are_evenly_spread_and_stable() -> None:
    assert smoke.sample_rows(5, size=200) == [0, 1, 2, 3, 4]
    rows = smoke.sample_rows(2085, size=200)
    assert (len(rows), rows[0], rows[-1]) == (200, 0, 2084)
    assert rows == sorted(set(rows)) == smoke.sample_rows(2085, size=200)
    assert max(b - a for a, b in itertools.pairwise(rows)) <= 11


def test_register_stores_the_sample_as_the_model_input_with_its_scores() -> None:
    """What record_sample logs: the model's input columns for the sampled rows, row for row with
    the probabilities register computed, under smoke/ of the candidate's run."""
    logged = []
    recorder = SimpleNamespace(log_text=lambda run_id, text, path: logged.append((run_id, text, path)))
    test = pd.DataFrame({"review_text": [f"text {i}" for i in range(300)], "title": [None] * 300})
    probability = [i / 300 for i in range(300)]
    smoke.record_sample(recorder, "run-1", test, probability)
    ((run_id, text, path),) = logged
    assert (run_id, path) == ("run-1", "smoke/test_sample.json")
    import json

    payload = json.loads(text)
    rows = smoke.sample_rows(300)
    assert payload["inputs"]["Review Text"] == [f"text {i}" for i in rows]
    assert payload["inputs"]["Title"] == [""] * len(rows)
    assert payload["probability"] == [i / 300 for i in rows]


@pytest.mark.slow
def test_a_version_that_does_not_exist_is_reported_by_the_fresh_process(tmp_path) -> None:
    """The child process turns a load error into its report (no traceback to parse)."""
    found = smoke._run_child("models:/no-such-model/1", {}, f"sqlite:///{tmp_path / 'mlflow.db'}", 300)
    assert set(found) == {"error"}
    assert "no-such-model" in found["error"]


# --- the routing rule -------------------------------------------------------------------------

PASSED = {"passed": True, "reason": "no worse than v3"}
REFUSED = {"passed": False, "reason": "below the floor"}
SMOKE_OK = {"passed": True, "status": "passed", "reason": "loads"}
SMOKE_BAD = {"passed": False, "status": "failed", "reason": "emoji: probability not finite (nan)"}
SKIPPED = {"passed": False, "status": "skipped", "reason": "not run: the gate refused the version"}
DRIFT = {**PASSED, "drift": "label share moved by 0.21"}
KEPT, SMOKE_FAILED, DRIFTED = names.OUTCOME_KEPT, names.OUTCOME_SMOKE_FAILED, names.OUTCOME_DRIFT


G_PASSED, G_REFUSED, ASK = task_ids.GATE_PASSED, task_ids.GATE_REFUSED, task_ids.APPROVAL
UNSOUND, DRIFTING = task_ids.SMOKE_FAILED, task_ids.DRIFTED
NAN_WHY = "smoke check failed: emoji: probability not finite (nan)"
DRIFT_WHY = "label share moved by 0.21"


@pytest.mark.parametrize(
    ("result", "smoke_result", "forced", "approval", "expected"),
    [
        # 1. the gate refused: kept, whatever else
        (REFUSED, SKIPPED, False, False, Route(G_REFUSED, KEPT, "below the floor")),
        (REFUSED, SMOKE_BAD, False, True, Route(G_REFUSED, KEPT, "below the floor")),
        ({**REFUSED, "drift": "x"}, SKIPPED, False, False, Route(G_REFUSED, KEPT, "below the floor")),
        # 2. the smoke check failed: kept, even when forced and whatever the approval
        (PASSED, SMOKE_BAD, False, False, Route(UNSOUND, SMOKE_FAILED, NAN_WHY)),
        (PASSED, SMOKE_BAD, True, True, Route(UNSOUND, SMOKE_FAILED, NAN_WHY)),
        (REFUSED, SMOKE_BAD, True, False, Route(UNSOUND, SMOKE_FAILED, NAN_WHY)),
        (
            PASSED,
            None,
            False,
            False,
            Route(UNSOUND, SMOKE_FAILED, "smoke check failed: the smoke check did not run"),
        ),
        (
            PASSED,
            SKIPPED,
            False,
            False,
            Route(UNSOUND, SMOKE_FAILED, f"smoke check failed: {SKIPPED['reason']}"),
        ),
        # 3. drift: the approval if asked, else kept; force skips it
        (DRIFT, SMOKE_OK, False, False, Route(DRIFTING, DRIFTED, f"drift: {DRIFT_WHY}")),
        (DRIFT, SMOKE_OK, False, True, Route(ASK, None, f"drift, approval asked: {DRIFT_WHY}")),
        (DRIFT, SMOKE_OK, True, False, Route(G_PASSED, None, "no worse than v3")),
        ({**PASSED, "drift": ""}, SMOKE_OK, False, False, Route(G_PASSED, None, "no worse than v3")),
        # 4. promote, after the approval if asked
        (PASSED, SMOKE_OK, False, False, Route(G_PASSED, None, "no worse than v3")),
        (PASSED, SMOKE_OK, False, True, Route(ASK, None, "no worse than v3")),
        (PASSED, SMOKE_OK, True, True, Route(ASK, None, "no worse than v3")),
    ],
)
def test_the_routing_rule(
    result: dict, smoke_result: dict | None, forced: bool, approval: bool, expected: Route
) -> None:
    found = route(result, smoke_result, forced=forced, require_approval=approval)
    assert found == expected
    assert found.keeps is (expected.outcome is not None)


def test_every_way_is_a_task_of_the_branch() -> None:
    """decide may only return the task ids that follow it in the DAG (tests/dags checks the
    edges); the ways that keep the champion name an outcome keep_champion records."""
    ways = {
        task_ids.GATE_PASSED,
        task_ids.APPROVAL,
        task_ids.GATE_REFUSED,
        task_ids.SMOKE_FAILED,
        task_ids.DRIFTED,
    }
    assert (task_ids.SMOKE_FAILED, task_ids.DRIFTED) == ("smoke_failed", "drifted")
    assert (names.OUTCOME_SMOKE_FAILED, names.OUTCOME_DRIFT) == ("smoke_failed", "drift")
    seen = set()
    for result in (PASSED, REFUSED, DRIFT):
        for smoke_result in (SMOKE_OK, SMOKE_BAD, SKIPPED, None):
            for forced in (False, True):
                for approval in (False, True):
                    found = route(result, smoke_result, forced=forced, require_approval=approval)
                    assert found.way in ways
                    assert (found.way in (G_PASSED, ASK)) is (found.outcome is None)
                    seen.add(found.way)
    assert seen == ways
