"""Unit tests of the promotion gate (the floor, the baseline, the champion, drift, a diverged
candidate, force) and of the decision record it leaves (its dict for XCom, its version tags)."""

from __future__ import annotations

import dataclasses
import math
from types import SimpleNamespace

import pytest

from review_sentiment import names
from review_sentiment.decision import (
    RegisterResult,
    gate_tags,
    outcome_tags,
    result_from_tags,
    verdict_tags,
    was_forced,
)
from review_sentiment.gate import GateFacts, GatePolicy, gate

NAN = math.nan


def _gate(candidate: float, champion: float | None, floor: float, force: bool = False, **facts):
    """The gate on a candidate's and a champion's test ROC AUC under a floor (and other facts)."""
    return gate(
        GateFacts(candidate_auc=candidate, champion_auc=champion, **facts),
        GatePolicy(floor=floor, force=force),
    )


@pytest.mark.parametrize(
    ("candidate", "champion", "floor", "promoted", "reason"),
    [
        (0.90, None, 0.85, True, "no champion score to beat; candidate test ROC AUC 0.9000 >= floor 0.8500"),
        (0.85, None, 0.85, True, "no champion score to beat"),  # the floor itself passes
        (0.84, None, 0.85, False, "candidate test ROC AUC 0.8400 is below the floor 0.8500"),
        (0.84, 0.80, 0.85, False, "below the floor"),  # beating a weak champion is not enough
        (0.90, 0.92, 0.85, False, "candidate test ROC AUC 0.9000 is worse than the champion's 0.9200"),
        (0.92, 0.92, 0.85, True, ">= champion's 0.9200 and floor 0.8500"),  # no worse: a tie promotes
        (0.95, 0.92, 0.85, True, ">= champion's 0.9200"),
        (0.90, NAN, 0.85, True, ""),  # a champion that cannot be scored does not block
        (NAN, None, 0.85, False, "candidate test ROC AUC is not finite"),
        (NAN, 0.92, 0.85, False, "not finite"),
        (math.inf, None, 0.85, False, "not finite"),
    ],
)
def test_gate(candidate: float, champion: float | None, floor: float, promoted: bool, reason: str) -> None:
    decision, why = _gate(candidate, champion, floor)
    assert decision is promoted
    assert reason in why


@pytest.mark.parametrize(("candidate", "champion"), [(0.5, 0.95), (NAN, 0.9), (0.1, None)])
def test_force_promotes_whatever_the_scores(candidate: float, champion: float | None) -> None:
    assert _gate(candidate, champion, floor=0.85, force=True) == (
        True,
        "force-promoted by request, gate skipped",
    )


def _result(promoted: bool) -> RegisterResult:
    return RegisterResult(
        model_name="m", version="3", run_id="r", promoted=promoted, reason="below the floor"
    )


def test_register_result_is_xcom_sized_plain_data() -> None:
    assert _result(True).to_dict() == {
        "model_name": "m",
        "version": "3",
        "run_id": "r",
        "promoted": True,
        "reason": "below the floor",
        "candidate": {},
        "champion": None,
        "champion_version": None,
        "reused": False,
        "baseline": None,
        "passed": False,
        "outcome": None,
        "compared": None,
        "comparison_size": None,
        "experiment_id": None,
        "monitoring": None,
        "difference": None,
        "noninferiority_margin": None,
        "drift": "",
    }
    assert RegisterResult.from_dict(_result(True).to_dict()) == _result(True)


@pytest.mark.parametrize(
    ("candidate", "baseline", "promoted", "reason"),
    [
        (0.95, 0.96, False, "does not beat the TF-IDF + logistic regression baseline's 0.9600"),
        (0.96, 0.96, False, "does not beat"),  # a tie with the baseline is not a win
        (0.97, 0.96, True, "baseline's 0.9600"),
        (0.97, NAN, True, ""),  # a baseline that could not be scored does not block
    ],
)
def test_gate_requires_beating_the_baseline(
    candidate: float, baseline: float, promoted: bool, reason: str
) -> None:
    decision, why = _gate(candidate, None, 0.85, baseline_auc=baseline)
    assert decision is promoted
    assert reason in why


def test_the_gate_weighs_the_scores_only_drift_is_not_among_its_facts() -> None:
    """Drift routes the week (approval or keep the champion); it is no longer a refusal."""
    assert "drift" not in {f.name for f in dataclasses.fields(GateFacts)}
    with pytest.raises(TypeError):
        GateFacts(candidate_auc=0.99, drift="label share 0.19 vs 0.82")  # type: ignore[call-arg]


def test_force_overrides_the_baseline() -> None:
    assert _gate(0.5, 0.9, 0.85, True, baseline_auc=0.95)[0] is True


def test_the_floor_is_checked_before_the_baseline() -> None:
    assert "below the floor" in _gate(0.80, None, 0.85, baseline_auc=0.9)[1]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"outcome": "promoted", "promoted": True}, "**promoted v3** to champion - candidate ROC AUC 0.9500"),
        (
            {
                "outcome": "kept",
                "champion_version": "2",
                "champion": {"roc_auc": 0.96},
                "comparison_size": 812,
            },
            "**kept champion v2**; v3 stays challenger - candidate ROC AUC 0.9500 vs champion 0.9600 on 812 "
            "unseen test reviews - below the floor",
        ),
        ({"outcome": "kept"}, "**not promoted**: v3 stays challenger - candidate ROC AUC 0.9500 - below"),
        (
            {"outcome": "smoke_failed", "champion_version": "2", "reason": "smoke check failed: emoji: nan"},
            "**kept champion v2**; v3 failed the smoke check, stays challenger - candidate ROC AUC 0.9500 - "
            "smoke check failed: emoji: nan",
        ),
        (
            {"outcome": "drift", "reason": "drift: label share moved by 0.21"},
            "**not promoted**: v3 held back (the week drifted), stays challenger - candidate ROC AUC "
            "0.9500 - drift: label share",
        ),
        ({}, "v3: gate refused"),
    ],
)
def test_the_run_note_says_the_outcome_and_the_scores(changes: dict, expected: str) -> None:
    result = RegisterResult(**{**_result(False).to_dict(), "candidate": {"roc_auc": 0.95}, **changes})
    assert result.note().startswith(expected)


def test_the_baseline_is_no_bar_when_the_policy_says_so() -> None:
    facts = GateFacts(candidate_auc=0.90, baseline_auc=0.95)
    passed, why = gate(facts, GatePolicy(floor=0.85, beat_baseline=False))
    assert passed is True
    assert why == "no champion score to beat; candidate test ROC AUC 0.9000 >= floor 0.8500"


@pytest.mark.parametrize(
    ("facts", "passed", "reason"),
    [
        (
            {"champion_auc": 0.95, "compared_auc": 0.94, "comparison_size": 812},
            False,
            "candidate ROC AUC 0.9400 is worse than the champion's 0.9500 on the 812 test reviews "
            "neither model was trained on",
        ),
        (
            {"champion_auc": 0.93, "compared_auc": 0.94, "comparison_size": 812, "baseline_auc": 0.9},
            True,
            "candidate ROC AUC 0.9400 >= champion's 0.9300 on the 812 test reviews neither model was "
            "trained on; test ROC AUC 0.9600 >= floor 0.8500, baseline's 0.9000",
        ),
        ({"champion_auc": 0.5, "cannot_compare": "too few to compare"}, False, "too few to compare"),
    ],
)
def test_the_champion_is_weighed_on_the_comparison_set(facts: dict, passed: bool, reason: str) -> None:
    assert gate(GateFacts(candidate_auc=0.96, **facts), GatePolicy(floor=0.85)) == (passed, reason)


def _version(tags: dict[str, str]) -> SimpleNamespace:
    """What result_from_tags reads of an MLflow ModelVersion."""
    return SimpleNamespace(version="3", run_id="r", tags=tags)


DECIDED = RegisterResult(
    model_name="m", version="3", run_id="r", promoted=False, passed=True, reason="no worse than v2",
    candidate={"roc_auc": 0.951234, "accuracy": 0.9}, champion={"roc_auc": 0.94},
    champion_version="2", baseline={"roc_auc": 0.93}, compared={"roc_auc": 0.95}, comparison_size=812,
)  # fmt: skip


@pytest.mark.parametrize(
    "result",
    [
        DECIDED,
        RegisterResult(model_name="m", version="3", run_id="r", promoted=False, reason="below the floor"),
    ],
    ids=["compared", "first-version"],
)
def test_the_record_reads_back_from_the_tags_it_writes(result: RegisterResult) -> None:
    assert result_from_tags("m", _version(verdict_tags(result)), reused=False) == result
    for outcome, reason in ((names.OUTCOME_PROMOTED, None), (names.OUTCOME_KEPT, "champion moved")):
        settled = result.settled(outcome, reason)
        tags = {**verdict_tags(result), **outcome_tags(settled)}
        assert result_from_tags("m", _version(tags), reused=True) == RegisterResult(
            **{**settled.to_dict(), "reused": True}
        )


def test_the_verdict_is_the_last_tag_written_and_the_tag_names_stay() -> None:
    """Older versions' tags are read by this code, and notify, the run note and the tests read
    these names: they must not change."""
    tags = verdict_tags(DECIDED)
    assert list(tags)[-1] == "gate.decision"
    assert tags == {
        "candidate.test_roc_auc": "0.951234",
        "candidate.test_accuracy": "0.900000",
        "baseline.test_roc_auc": "0.930000",
        "champion.version": "2",
        "champion.test_roc_auc": "0.940000",
        "candidate.compared_roc_auc": "0.950000",
        "gate.comparison_size": "812",
        "gate.reason": "no worse than v2",
        "gate.decision": "passed",
    }
    assert outcome_tags(DECIDED.settled("kept")) == {"outcome": "kept", "outcome.reason": "no worse than v2"}


def test_a_version_without_a_comparison_reads_back_none() -> None:
    tags = verdict_tags(RegisterResult(model_name="m", version="3", run_id="r", promoted=False, reason="x"))
    assert (tags["champion.version"], tags["gate.comparison_size"], tags["gate.decision"]) == (
        "none",
        "none",
        "refused",
    )


def test_the_policy_is_recorded_beside_the_verdict() -> None:
    policy = GatePolicy(floor=0.8, beat_baseline=True, force=True)
    tags = gate_tags(policy, 0.4321, "baseline-run", has_baseline=True)
    assert tags == {
        "candidate.threshold": "0.432100",
        "baseline.run_id": "baseline-run",
        "gate.beat_baseline": "true",
        "gate.floor": "0.8",
        "gate.forced": "true",
    }
    assert was_forced(tags)
    unbarred = gate_tags(GatePolicy(), 0.5, None, has_baseline=False)
    assert (unbarred["baseline.run_id"], unbarred["gate.beat_baseline"], was_forced(unbarred)) == (
        "none",
        "false",
        False,
    )


def _evidence(comparison, drift=None, baseline=None):
    from review_sentiment.evidence import Evidence

    return Evidence(
        run=None, data=None, test=None, candidate={"roc_auc": 0.95}, probability=None, threshold=0.5,
        baseline_run_id=None, drift=drift, baseline=baseline, comparison=comparison,
    )  # fmt: skip


def test_the_gate_sees_no_champion_as_no_champion() -> None:
    from review_sentiment.evidence import NO_CHAMPION

    assert _evidence(NO_CHAMPION).facts() == GateFacts(candidate_auc=0.95)
    assert gate(_evidence(NO_CHAMPION).facts(), GatePolicy(floor=0.85)).passed


def test_the_gate_sees_the_comparison_and_the_baseline_and_the_record_the_drift() -> None:
    from review_sentiment.evidence import Comparison

    compared = Comparison("2", size=812, candidate={"roc_auc": 0.94}, champion={"roc_auc": 0.93})
    drift = SimpleNamespace(drifted=True, reason="label share: 0.19 of the new reviews are recommended")
    evidence = _evidence(compared, drift, SimpleNamespace(scores={"roc_auc": 0.9}))
    assert evidence.facts() == GateFacts(
        candidate_auc=0.95, baseline_auc=0.9, champion_auc=0.93, compared_auc=0.94, comparison_size=812,
    )  # fmt: skip
    assert gate(evidence.facts(), GatePolicy(floor=0.85)).passed  # drift does not refuse
    assert evidence.drift_reason == drift.reason
    assert _evidence(compared, SimpleNamespace(drifted=False, reason="no drift")).drift_reason == ""
    assert _evidence(compared).drift_reason == ""  # no check asked
    unfair = Comparison("2", unavailable="too few to compare the two fairly")
    assert _evidence(unfair).facts().cannot_compare == "too few to compare the two fairly"


# --- Non-inferiority on the interval of candidate - champion ROC AUC (issue 20) -----------------
def _compared(low: float, estimate: float = 0.0031, high: float = 0.0075, **facts) -> GateFacts:
    from review_sentiment.uncertainty import Interval

    return GateFacts(
        candidate_auc=0.96, champion_auc=0.95, compared_auc=0.953, comparison_size=2085,
        auc_difference=Interval(estimate, low, high), **facts,
    )  # fmt: skip


def test_a_lower_bound_above_minus_the_margin_passes_and_says_the_interval() -> None:
    passed, why = gate(_compared(-0.0012), GatePolicy(floor=0.85))
    assert passed is True
    assert why == (
        "candidate - champion ROC AUC +0.0031 [95% CI -0.0012, +0.0075] on 2,085 unseen test reviews: "
        "non-inferior (lower bound above -0.002); test ROC AUC 0.9600 >= floor 0.8500"
    )


@pytest.mark.parametrize(
    ("low", "estimate", "margin", "refusal"),
    [
        (-0.0019, -0.0005, 0.002, None),  # a worse point estimate within the margin passes
        (-0.0020, 0.0010, 0.002, "lower bound -0.0020 is not above -0.002"),  # the bound itself fails
        (-0.0052, 0.0010, 0.002, "lower bound -0.0052 is not above -0.002"),  # better but too unsure
        (-0.0052, 0.0010, 0.01, None),  # a wider margin lets it through
        (-0.0001, 0.0010, 0.0, "lower bound -0.0001 is not above 0"),  # margin 0: superiority
        (0.0001, 0.0010, 0.0, None),
    ],
)
def test_the_champion_rule_is_the_lower_bound_against_the_margin(
    low: float, estimate: float, margin: float, refusal: str | None
) -> None:
    verdict = gate(_compared(low, estimate), GatePolicy(floor=0.85, margin=margin))
    assert verdict.passed is (refusal is None)
    if refusal is not None:
        assert verdict.reason.endswith(f"not shown non-inferior ({refusal})")


def test_the_other_rules_still_come_first_and_force_still_skips() -> None:
    assert "below the floor" in gate(_compared(0.001), GatePolicy(floor=0.97)).reason
    assert gate(_compared(-0.05), GatePolicy(force=True)).passed


@pytest.mark.parametrize("margin", [-0.001, math.nan, math.inf])
def test_a_bad_margin_is_refused(margin: float) -> None:
    with pytest.raises(ValueError, match="non-inferiority margin"):
        GatePolicy(margin=margin)


def test_the_default_margin_is_the_config_constant() -> None:
    from review_sentiment.config import DEFAULT_NONINFERIORITY_MARGIN

    assert GatePolicy().margin == DEFAULT_NONINFERIORITY_MARGIN == 0.002


INTERVAL = {
    "roc_auc": 0.0031, "roc_auc_low": -0.0012, "roc_auc_high": 0.0075, "f1_not_recommended": 0.01,
    "f1_not_recommended_low": -0.02, "f1_not_recommended_high": 0.04, "confidence": 0.95, "resamples": 2000.0,
}  # fmt: skip


def test_the_interval_and_the_margin_are_tagged_and_read_back() -> None:
    import dataclasses

    result = dataclasses.replace(DECIDED, difference=INTERVAL, noninferiority_margin=0.002)
    tags = verdict_tags(result)
    assert tags["gate.difference_roc_auc_low"] == "-0.001200"
    assert tags["gate.noninferiority_margin"] == "0.002"
    assert list(tags)[-1] == "gate.decision"
    assert result_from_tags("m", _version(tags), reused=False) == result
    old = result_from_tags("m", _version(verdict_tags(DECIDED)), reused=False)  # before intervals
    assert (old.difference, old.noninferiority_margin) == (None, None)


def test_the_gate_sees_the_interval_of_the_comparison() -> None:
    from review_sentiment.evidence import Comparison
    from review_sentiment.uncertainty import Difference, Interval

    difference = Difference(Interval(0.003, -0.001, 0.007), Interval(0.01, -0.02, 0.04), 812, 2000)
    compared = Comparison(
        "2", size=812, candidate={"roc_auc": 0.94}, champion={"roc_auc": 0.93}, difference=difference
    )
    assert _evidence(compared).facts().auc_difference == difference.roc_auc
    assert _evidence(Comparison("2", unavailable="too few")).facts().auc_difference is None


def test_promotes_recheck_under_the_lock_applies_the_same_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """A champion that moved meanwhile: the candidate is kept out unless the interval against the
    new champion clears the margin, as the gate would."""
    from review_sentiment import register
    from review_sentiment.evidence import Comparison
    from review_sentiment.uncertainty import Difference, Interval

    def comparison(low: float) -> Comparison:
        difference = Difference(Interval(0.001, low, 0.006), Interval(0.0, -0.01, 0.01), 900, 2000)
        return Comparison("5", size=900, candidate={"roc_auc": 0.95}, champion={"roc_auc": 0.949},
                          difference=difference)  # fmt: skip

    found: list[Comparison] = []
    monkeypatch.setattr(register, "Tokenized", lambda path: SimpleNamespace(frame=lambda split: None))
    monkeypatch.setattr(register.scoring, "score", lambda uri, test: None)
    monkeypatch.setattr(register, "model_uri", lambda run_id, uri: "runs:/r/model")
    monkeypatch.setattr(register.versions, "version_threshold", lambda version: 0.5)
    monkeypatch.setattr(register, "compare", lambda *args: found[-1])
    candidate, settings = SimpleNamespace(run_id="r"), SimpleNamespace(tracking_uri=None)
    found.append(comparison(-0.0015))
    assert register._still_better(None, candidate, "m.json", settings, 0.002) == (
        True,
        "champion moved to v5 after this run's comparison; candidate - champion ROC AUC +0.0010 [95% CI "
        "-0.0015, +0.0060] on 900 unseen test reviews: non-inferior (lower bound above -0.002)",
    )
    found.append(comparison(-0.003))
    passed, reason = register._still_better(None, candidate, "m.json", settings, 0.002)
    assert passed is False
    assert reason.startswith("champion moved to v5 after this run's comparison; candidate - champion ROC AUC")
    assert reason.endswith("not shown non-inferior (lower bound -0.0030 is not above -0.002)")
    assert register._still_better(None, candidate, "m.json", settings, 0.005).passed


def test_the_drift_reason_is_tagged_only_when_there_is_one_and_reads_back() -> None:
    drifted = dataclasses.replace(DECIDED, drift="412 new reviews vs champion v2's training snapshot drifted")
    tags = verdict_tags(drifted)
    assert tags["gate.drift"] == drifted.drift
    assert list(tags)[-1] == "gate.decision"
    assert result_from_tags("m", _version(tags), reused=False) == drifted
    assert "gate.drift" not in verdict_tags(DECIDED)
    assert result_from_tags("m", _version(verdict_tags(DECIDED)), reused=False).drift == ""
    assert "drift: 412 new reviews" in drifted.note()
    assert "drift: 412 new reviews" in drifted.summary()
    assert "drift" not in DECIDED.note()
