"""Unit tests of the champion ledger's pure parts (entries as tags, order, finding an earlier try's
entry, the previous champion), of a rollback's target checks, its mail and its CLI flags. The
registry side runs on real servers: tests/integration/test_rollback_on_servers.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from review_sentiment import cli, ledger
from review_sentiment.config import Settings
from review_sentiment.ledger import Entry, Move, find_entry, new_entry, parse_ledger, previous_champion
from review_sentiment.notify import Outcome, from_result, message
from review_sentiment.rollback import RollbackRefused, RollbackResult, _target, check_target

NOW = datetime(2026, 12, 7, 5, 0, 0, 123456, tzinfo=UTC)


def entry(
    seq: int, from_version: str | None, to_version: str, run: str = "sentiment_retrain/r1", **kw
) -> Entry:
    fields = {"at": "2026-12-07T05:00:00+00:00", "reason": "why", "kind": "promoted", **kw}
    return Entry(seq=seq, from_version=from_version, to_version=to_version, run=run, **fields)


def ledger_of(*entries: Entry) -> list[Entry]:
    return list(entries)


def test_an_entry_round_trips_through_its_tag() -> None:
    e = entry(12, "3", "4", kind="forced", by="alice")
    assert e.key == "ledger.000012"
    value = e.to_json()
    assert json.loads(value) == {
        "at": "2026-12-07T05:00:00+00:00", "from_version": "3", "to_version": "4",
        "run": "sentiment_retrain/r1", "reason": "why", "kind": "forced", "by": "alice",
    }  # fmt: skip
    assert " " not in value.replace("2026-12-07T05:00:00+00:00", "")  # compact
    assert Entry.from_tag(e.key, value) == e


def test_parse_ledger_orders_by_sequence_and_ignores_other_tags(caplog: pytest.LogCaptureFixture) -> None:
    tags = {
        entry(10, "2", "3").key: entry(10, "2", "3").to_json(),
        entry(2, "1", "2").key: entry(2, "1", "2").to_json(),
        "ledger.champion_since": "2026-12-07",  # a version-style tag, not an entry
        "owner": "ml-platform",
        "ledger.000011": "{not json",
    }
    found = parse_ledger(tags)
    assert [e.seq for e in found] == [2, 10]
    assert "ledger.000011 is unreadable" in caplog.text


def test_new_entry_numbers_after_the_highest_and_stamps_utc_seconds() -> None:
    first = new_entry([], Move(None, "1", None, "first", "promoted"), now=NOW)
    assert (first.seq, first.run, first.from_version) == (1, "cli", None)
    assert first.at == "2026-12-07T05:00:00+00:00"
    later = NOW.astimezone(timezone(timedelta(hours=2)))
    move = Move(2, 1, "d/r", "  many\n  spaces ", "rollback")  # type: ignore[arg-type]
    nxt = new_entry([entry(1, None, "1"), entry(7, "1", "2")], move, now=later)
    assert (nxt.seq, nxt.from_version, nxt.to_version, nxt.reason) == (8, "2", "1", "many spaces")
    assert nxt.at == "2026-12-07T05:00:00+00:00"


def test_reasons_are_capped_and_kinds_checked() -> None:
    long = new_entry([], Move(None, "1", None, "x" * 5000, "promoted"))
    assert len(long.to_json()) < 1200
    with pytest.raises(ValueError, match="unknown ledger kind 'moved'"):
        entry(1, None, "1", kind="moved")


def test_find_entry_finds_a_dag_runs_move_anywhere() -> None:
    entries = ledger_of(entry(1, None, "1", run="d/a"), entry(2, "1", "2", run="d/b"), entry(3, "2", "3"))
    assert find_entry(entries, "d/a", "1") == entries[0]
    assert find_entry(entries, "d/a", "2") is None
    assert find_entry(entries, "d/c", "1") is None


def test_find_entry_for_the_shell_looks_only_at_the_newest() -> None:
    """Every shell move is run "cli": an older cli move to v1 is a separate, finished move."""
    entries = ledger_of(entry(1, "2", "1", run="cli"), entry(2, "1", "2", run="d/b"))
    assert find_entry(entries, "cli", "1", "2") is None
    unfinished = ledger_of(*entries, entry(3, "2", "1", run="cli"))
    assert find_entry(unfinished, "cli", "1", "2") == unfinished[-1]
    # The alias moved on (outside the ledger) since: a new move, not the same one.
    assert find_entry(unfinished, "cli", "1", "3") is None


def test_previous_champion_is_where_the_newest_move_to_the_current_came_from() -> None:
    entries = ledger_of(entry(1, None, "1"), entry(2, "1", "2"), entry(3, "2", "1", kind="rollback"))
    assert previous_champion(entries, "1") == "2"  # back again: undoes the rollback
    assert previous_champion(entries, "2") == "1"
    assert previous_champion(entries, "9") is None
    assert previous_champion(entries, None) is None
    assert previous_champion([], "1") is None


def test_entry_line_reads_as_one_move() -> None:
    line = entry(3, "2", "1", run="cli", kind="rollback", by="bob", reason="v2 mislabels").line()
    assert line == "#3 2026-12-07T05:00:00+00:00 rollback: v2 -> v1 (cli by bob) v2 mislabels"
    assert "(none) -> v1" in entry(1, None, "1").line()


def version(number: str = "3", status: str = "READY", stage: str = "None", **tags: str) -> SimpleNamespace:
    return SimpleNamespace(version=number, status=status, current_stage=stage, tags=tags)


def test_check_target_accepts_a_version_that_passed_a_gate() -> None:
    check_target(version(**{"gate.decision": "passed"}), force=False)


@pytest.mark.parametrize(
    ("target", "message_part"),
    [
        (version(**{"gate.decision": "refused"}), "never passed a gate (gate.decision is refused)"),
        (version(), "never passed a gate (gate.decision is missing)"),
        (version(stage="Archived", **{"gate.decision": "passed"}), "is archived"),
        (
            version(**{"gate.decision": "passed", "smoke.passed": "false", "smoke.reason": "NaN scores"}),
            "failed its smoke check (NaN scores)",
        ),
    ],
)
def test_check_target_refuses_unless_forced(target: SimpleNamespace, message_part: str) -> None:
    with pytest.raises(RollbackRefused, match=message_part.replace("(", r"\(").replace(")", r"\)")):
        check_target(target, force=False)
    check_target(target, force=True)


def test_a_version_not_ready_is_refused_even_forced() -> None:
    with pytest.raises(RollbackRefused, match="not ready to serve"):
        check_target(version(status="FAILED_REGISTRATION", **{"gate.decision": "passed"}), force=True)


def test_target_given_or_from_the_ledger_or_the_champions_tag() -> None:
    champion = version("2", **{"champion.version": "1"})
    assert _target("v5", [], champion) == "5"
    assert _target(" 05 ", [], champion) == "5"
    assert _target(None, [entry(1, "3", "2")], champion) == "3"
    assert _target("", [], champion) == "1"  # no ledger yet: the version it was compared with
    with pytest.raises(RollbackRefused, match="not a model version number"):
        _target("latest", [], champion)
    with pytest.raises(RollbackRefused, match="names no champion before v2"):
        _target(None, [], version("2", **{"champion.version": "none"}))
    with pytest.raises(RollbackRefused, match="no champion to roll back from"):
        _target(None, [], None)


def test_rollback_mail_says_what_moved() -> None:
    settings = Settings.from_env({"SENTIMENT_NOTIFY_TO": "ml@example.org"})
    moved = RollbackResult("m", "1", "2", "rolled_back", "v2 mislabels", ledger_entry=3).to_dict()
    subject, body = message(from_result("rolled_back", moved, "sentiment_rollback", "manual__1"), settings)
    assert subject == "[sentiment_rollback] rolled back champion to v1 from v2 (run manual__1)"
    assert "<p>Rolled back champion to v1 from v2.</p>" in body
    assert "<td>v2 mislabels</td>" in body
    same = RollbackResult("m", "1", "1", "unchanged", "again").to_dict()
    subject, _ = message(from_result("rolled_back", same, "sentiment_rollback", "manual__2"), settings)
    assert "v1 already was champion, nothing moved" in subject
    assert Outcome(kind="rolled_back", dag_id="d", run_id="r").previous_version is None


def test_rollback_result_summary() -> None:
    moved = RollbackResult("m", "1", "2", "rolled_back", "why", forced=True, ledger_entry=3)
    assert moved.summary() == "rolled back m champion from v2 to v1 (forced), ledger entry #3: why"
    assert "nothing moved" in RollbackResult("m", "1", "1", "unchanged", "why").summary()


def test_cli_rollback_needs_a_reason_and_defaults_to_the_previous_champion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = cli.parser().parse_args(["rollback", "--reason", "bad week"])
    assert (args.to, args.reason, args.force) == (None, "bad week", False)
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["rollback", "--to", "3"])
    assert "--reason" in capsys.readouterr().err
    assert cli.parser().parse_args(["history"]).stage == "history"


def test_a_blank_reason_is_refused_before_anything_is_read() -> None:
    from review_sentiment.rollback import rollback

    # No server behind this URI: the refusal comes before any connection.
    settings = Settings.from_env({"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    with pytest.raises(RollbackRefused, match="needs a reason"):
        rollback("1", "   ", settings=settings)
    assert ledger.KINDS == ("promoted", "forced", "rollback")
