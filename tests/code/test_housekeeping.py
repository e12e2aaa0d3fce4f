"""Housekeeping without servers: the pure planner on hand-made inventories, the executor's file
side (trash, interrupted and resumed passes) and the preprocess cache's compaction. The registry
side (archiving, kept champions loading and rolling back) runs on real servers:
tests/integration/test_housekeeping_on_servers.py."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from review_sentiment import cli, schema
from review_sentiment.cleaning_rules import PreprocessSettings
from review_sentiment.housekeeping_apply import PURGING, apply_frees, apply_moves, scan_folders
from review_sentiment.housekeeping_plan import Inventory, Plan, Policy, Report, RunFolder, Version, plan
from review_sentiment.layout import ArtifactLayout
from review_sentiment.ledger import Entry
from review_sentiment.preprocess import TextCleaner
from review_sentiment.preprocess_cache import PreprocessCache, compact_cache, snapshot_keys
from tests.support.run_folders import fake_run_folder, folder_digest

NOW = datetime(2026, 12, 6, 6, 0, tzinfo=UTC)
ROOT = "/srv/artifacts"
POLICY = Policy(keep_weeks=8, challenger_weeks=12, keep_champions=2)


def weeks_ago(weeks: float) -> datetime:
    return NOW - timedelta(weeks=weeks)


def folder(key: str, age_weeks: float, *, trashed: bool = False, size: int = 1000) -> RunFolder:
    return RunFolder(key, size, weeks_ago(age_weeks), (f"{key}/ingest/reviews.parquet",), trashed)


def version(
    number: int, age_weeks: float, run: str | None = None, stage: str = "None", **tags: str
) -> Version:
    all_tags = {"pipeline_run_id": run, **tags} if run else dict(tags)
    return Version(str(number), weeks_ago(age_weeks), stage, all_tags)


def move(seq: int, source: str | None, target: str, kind: str = "promoted") -> Entry:
    return Entry(seq, "2026-10-01T03:00:00+00:00", source, target, "sentiment_retrain/x", "why", kind)


def inventory(folders=(), versions=(), entries=(), aliases=None) -> Inventory:
    return Inventory(NOW, ROOT, tuple(folders), tuple(versions), tuple(entries), aliases or {})


def keys(folders) -> list[str]:
    return [f.key for f in folders]


# --- the planner --------------------------------------------------------------------------------


def test_old_folders_go_young_ones_stay() -> None:
    done = plan(inventory([folder("sentiment_retrain/old", 9), folder("sentiment_retrain/new", 7.9),
                           folder("sentiment_score/old", 20)]), POLICY)  # fmt: skip
    assert keys(done.delete) == ["sentiment_retrain/old", "sentiment_score/old"]
    assert done.bytes_to_free == 2000
    assert done.kept_folders == 1
    assert done.snapshots == ("sentiment_retrain/new/ingest/reviews.parquet",)  # the cache keeps these


def test_the_champion_and_the_last_k_of_the_ledger_keep_their_run_folders() -> None:
    # v1, v2, v3, back to v2 (a rollback), then v4: the last two distinct are v4 and v2; v4 holds it.
    entries = [move(1, None, "1"), move(2, "1", "2"), move(3, "2", "3"), move(4, "3", "2", "rollback"),
               move(5, "2", "4")]  # fmt: skip
    versions = [version(n, 20 - n, f"sentiment_retrain/w{n}") for n in (1, 2, 3, 4)]
    folders = [folder(f"sentiment_retrain/w{n}", 20 - n) for n in (1, 2, 3, 4)]
    done = plan(inventory(folders, versions, entries, {"champion": "4"}), POLICY)
    assert done.kept_champions == ("4", "2")
    assert keys(done.delete) == ["sentiment_retrain/w1", "sentiment_retrain/w3"]
    assert done.protected == {
        "sentiment_retrain/w2": "referenced by v2 (a kept champion)",
        "sentiment_retrain/w4": "referenced by v4 (a kept champion)",
    }
    assert done.archive == ()  # all of them were champion once
    wider = plan(inventory(folders, versions, entries, {"champion": "4"}), Policy(keep_champions=3))
    assert wider.kept_champions == ("4", "2", "3")
    assert keys(wider.delete) == ["sentiment_retrain/w1"]


def test_the_current_champion_is_kept_even_if_the_ledger_does_not_name_it() -> None:
    entries = [move(1, None, "1"), move(2, "1", "2"), move(3, "2", "3")]
    versions = [version(n, 30, f"sentiment_retrain/w{n}") for n in (1, 2, 3, 9)]
    folders = [folder(f"sentiment_retrain/w{n}", 30) for n in (1, 2, 3, 9)]
    done = plan(inventory(folders, versions, entries, {"champion": "9"}), POLICY)  # set by hand
    assert done.kept_champions == ("9", "3", "2")
    assert keys(done.delete) == ["sentiment_retrain/w1"]


def test_without_a_ledger_former_champions_come_from_their_tags() -> None:
    versions = [version(1, 30, "sentiment_retrain/w1", outcome="promoted"),
                version(2, 29, "sentiment_retrain/w2", **{"ledger.champion_since": "2026-09-01"}),
                version(3, 28, "sentiment_retrain/w3", outcome="kept"),
                version(4, 27, "sentiment_retrain/w4", outcome="promoted")]  # fmt: skip
    folders = [folder(f"sentiment_retrain/w{n}", 27) for n in (1, 2, 3, 4)]
    done = plan(inventory(folders, versions, aliases={"champion": "4"}), POLICY)
    assert done.kept_champions == ("4", "2")
    assert keys(done.delete) == ["sentiment_retrain/w1", "sentiment_retrain/w3"]
    assert done.archive == ("3",)  # never champion, 28 weeks old


def test_the_training_snapshot_tag_keeps_its_run_folder_relative_or_absolute() -> None:
    snapshots = ["sentiment_retrain/w1/ingest/reviews.parquet", f"{ROOT}/sentiment_retrain/w2/ingest",
                 "/elsewhere/sentiment_retrain/w3"]  # fmt: skip
    versions = [version(n, 1, f"sentiment_retrain/w{n}", **{"training.snapshot": s})
                for n, s in zip((5, 6, 7), snapshots, strict=True)]  # fmt: skip
    folders = [folder(f"sentiment_retrain/w{n}", 30) for n in (1, 2, 3)]
    entries = [move(1, None, "5"), move(2, "5", "6"), move(3, "6", "7")]
    done = plan(inventory(folders, versions, entries, {"champion": "7"}), Policy(keep_champions=3))
    assert set(done.protected) == {"sentiment_retrain/w1", "sentiment_retrain/w2"}
    assert keys(done.delete) == ["sentiment_retrain/w3"]  # a path outside the root protects nothing


@pytest.mark.parametrize(
    ("tag", "protected"),
    [
        ("sentiment_retrain", ["sentiment_retrain/a", "sentiment_retrain/b"]),  # a whole DAG's folder
        ("../sentiment_retrain/a", []),  # climbing out names nothing
        ("week-1", []),  # a test's pipeline id: no run folder
        ("", []),
    ],
)
def test_odd_references(tag: str, protected: list[str]) -> None:
    versions = [version(1, 1, tag)] if tag else [version(1, 1)]
    folders = [folder("sentiment_retrain/a", 30), folder("sentiment_retrain/b", 30)]
    done = plan(inventory(folders, versions, [move(1, None, "1")], {"champion": "1"}), POLICY)
    assert sorted(done.protected) == protected
    assert len(done.delete) == 2 - len(protected)


def test_an_alias_holder_keeps_its_folder_and_is_not_archived() -> None:
    versions = [version(1, 30, "sentiment_retrain/w1"), version(2, 30, "sentiment_retrain/w2")]
    folders = [folder("sentiment_retrain/w1", 30), folder("sentiment_retrain/w2", 30)]
    done = plan(
        inventory(folders, versions, [move(1, None, "1")], {"champion": "1", "challenger": "2"}), POLICY
    )
    assert done.protected["sentiment_retrain/w2"] == "referenced by v2 (alias challenger)"
    assert (done.delete, done.archive) == ((), ())


def test_which_versions_are_archived() -> None:
    versions = [
        version(1, 40),  # champion once (the ledger)
        version(2, 40),  # never champion, old: archived
        version(3, 11),  # never champion, but younger than 12 weeks
        version(4, 40, stage="Archived"),  # archived already
        version(5, 40),  # compared against as the champion by v6 (before the ledger)
        version(6, 40, **{"champion.version": "5"}),  # never champion, old: archived
        version(7, 1),  # the champion
    ]
    done = plan(inventory([], versions, [move(1, None, "1"), move(2, "1", "7")], {"champion": "7"}), POLICY)
    assert done.archive == ("2", "6")


def test_the_trash_is_finished_or_restored() -> None:
    """An interrupted pass left two folders in the trash; one now belongs to a kept champion."""
    versions = [version(1, 30, "sentiment_retrain/w1")]
    folders = [
        folder("sentiment_retrain/w1", 30, trashed=True),
        folder("sentiment_retrain/w2", 1, trashed=True),
    ]
    done = plan(inventory(folders, versions, [move(1, None, "1")], {"champion": "1"}), POLICY)
    assert keys(done.restore) == ["sentiment_retrain/w1"]
    assert keys(done.purge) == ["sentiment_retrain/w2"]  # young or not: the earlier pass decided
    assert done.delete == ()
    assert done.snapshots == ("sentiment_retrain/w1/ingest/reviews.parquet",)
    lines = "\n".join(done.lines())
    assert "restore sentiment_retrain/w1 from trash" in lines
    assert "finish deleting sentiment_retrain/w2" in lines


def test_an_empty_inventory_plans_nothing() -> None:
    done = plan(inventory(), POLICY)
    assert (done.kept_champions, done.delete, done.archive, done.snapshots) == ((), (), (), ())
    assert done.lines()[-1] == "0 run folder(s) to delete (0.0 MB), 0 kept, 0 version(s) to archive"


@pytest.mark.parametrize("bad", [{"keep_weeks": 0}, {"keep_champions": -1}, {"challenger_weeks": 1.5},
                                 {"keep_weeks": True}])  # fmt: skip
def test_a_bad_policy_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="must be a whole number >= 1"):
        Policy(**bad)


def test_the_cli_flags_and_their_defaults() -> None:
    args = cli.parser().parse_args(["housekeeping"])
    assert (args.dry_run, args.keep_weeks, args.challenger_weeks, args.keep_champions) == (False, 8, 12, 3)
    args = cli.parser().parse_args(
        ["housekeeping", "--dry-run", "--keep-weeks", "2", "--keep-champions", "5"]
    )
    assert (args.dry_run, args.keep_weeks, args.keep_champions) == (True, 2, 5)
    assert cli.main(["housekeeping", "--keep-weeks", "0"]) == cli.EXIT_BAD_INPUT


# --- the executor's file side -------------------------------------------------------------------


class Stop(Exception):
    """The simulated interruption."""


def _stop_after(n: int):
    done: list[str] = []

    def step(what: str) -> None:
        done.append(what)
        if len(done) == n:
            raise Stop(what)

    return step, done


def _pass(layout: ArtifactLayout, versions, step) -> tuple[Plan, Report]:
    found = Inventory(NOW, str(layout.root), scan_folders(layout), tuple(versions), (), {"champion": "1"})
    the_plan = plan(found, POLICY)
    report = Report(False, list(the_plan.kept_champions))
    apply_moves(the_plan, layout, None, "m", report, step)
    apply_frees(the_plan, layout, report, step)
    return the_plan, report


def test_an_interrupted_pass_is_completed_by_the_next_and_keeps_what_it_keeps(tmp_path: Path) -> None:
    layout = ArtifactLayout(tmp_path)
    for n in range(4):
        fake_run_folder(tmp_path, f"sentiment_retrain/w{n}", weeks_ago(20 - n), [f"review {n}", "shared"])
    fake_run_folder(tmp_path, "sentiment_retrain/new", weeks_ago(1), ["fresh", "shared"])
    for other in ("state/m", "locks", "cache/preprocess/abc", "unknown/x/y"):
        (tmp_path / other).mkdir(parents=True)
        (tmp_path / other / "f").write_text("keep me")
        os.utime(tmp_path / other / "f", (0, 0))
    versions = [version(1, 20, "sentiment_retrain/w0")]  # the champion: w0 stays
    kept = {k: folder_digest(tmp_path / k) for k in ("sentiment_retrain/w0", "sentiment_retrain/new")}
    # Stop after two folders went to the trash, before any was deleted.
    step, done = _stop_after(2)
    with pytest.raises(Stop):
        _pass(layout, versions, step)
    assert done == ["moved sentiment_retrain/w1 to the trash", "moved sentiment_retrain/w2 to the trash"]
    assert sorted(p.name for p in (tmp_path / "trash" / "sentiment_retrain").iterdir()) == ["w1", "w2"]
    # Stop again midway through the deletions.
    step, done = _stop_after(2)
    with pytest.raises(Stop):
        _pass(layout, versions, step)
    assert done[-1] == "deleted sentiment_retrain/w1"
    # A third pass finishes.
    _, report = _pass(layout, versions, lambda _: None)
    assert sorted(p.name for p in (tmp_path / "sentiment_retrain").iterdir()) == ["new", "w0"]
    assert not list((tmp_path / "trash").rglob("*.bin"))
    assert not (tmp_path / "trash" / PURGING).exists() or not any((tmp_path / "trash" / PURGING).iterdir())
    assert report.bytes_freed > 0
    assert {k: folder_digest(tmp_path / k) for k in kept} == kept
    for other in ("state/m", "locks", "cache/preprocess/abc", "unknown/x/y"):
        assert (tmp_path / other / "f").read_text() == "keep me"
    # Nothing left to do.
    again, report = _pass(layout, versions, lambda _: None)
    assert (again.delete, again.purge, report.bytes_freed) == ((), (), 0)


def test_a_trashed_folder_a_kept_champion_needs_is_put_back(tmp_path: Path) -> None:
    layout = ArtifactLayout(tmp_path)
    fake_run_folder(tmp_path, "sentiment_retrain/w1", weeks_ago(20), ["a"])
    fake_run_folder(tmp_path, "sentiment_retrain/w2", weeks_ago(20), ["b"])
    before = folder_digest(tmp_path / "sentiment_retrain/w2")
    step, _ = _stop_after(2)  # both moved to the trash, then stopped
    with pytest.raises(Stop):
        _pass(layout, [version(1, 20, "sentiment_retrain/w0")], step)
    # Meanwhile v1 became a champion whose tags name w2: the next pass restores it, deletes w1.
    the_plan, report = _pass(layout, [version(1, 20, "sentiment_retrain/w2")], lambda _: None)
    assert keys(the_plan.restore) == ["sentiment_retrain/w2"]
    assert report.folders_restored == 1
    assert folder_digest(tmp_path / "sentiment_retrain/w2") == before
    assert not (tmp_path / "sentiment_retrain/w1").exists()


def test_a_folder_is_as_young_as_its_newest_file(tmp_path: Path) -> None:
    fake_run_folder(tmp_path, "sentiment_retrain/w1", weeks_ago(20), ["a"])
    recent = weeks_ago(1).timestamp()
    os.utime(tmp_path / "sentiment_retrain/w1/train/weights.bin", (recent, recent))
    (found,) = scan_folders(ArtifactLayout(tmp_path))
    assert found.modified == datetime.fromtimestamp(recent, UTC)
    assert found.snapshots == ("sentiment_retrain/w1/ingest/reviews.parquet",)
    assert found.size > 50_000


# --- the preprocess cache -----------------------------------------------------------------------


def test_the_cache_is_compacted_to_the_kept_reviews(tmp_path: Path) -> None:
    settings = PreprocessSettings(use_title=True)
    texts, titles = ["Love it", "Too small", "Itchy", "Perfect fit"], ["Yes", "", "No", "Wow"]
    frame = pd.DataFrame({schema.TEXT: texts, schema.TITLE: titles})
    cache = PreprocessCache(tmp_path / "cache", TextCleaner(settings))
    expected = cache.clean_many(frame[schema.TEXT], frame[schema.TITLE])
    cache.clean_many(frame[schema.TITLE])
    cache.save()
    kept = tmp_path / "kept.parquet"
    frame.iloc[[0, 3]].to_parquet(kept, index=False)
    freed, dropped = compact_cache(tmp_path / "cache", snapshot_keys([kept]))
    assert freed > 0
    assert dropped == 4  # "Too small", "No Itchy", and the titles alone "No" and ""
    again = PreprocessCache(tmp_path / "cache", TextCleaner(settings))
    assert len(again) == 4  # "Yes Love it", "Wow Perfect fit", and the titles alone "Yes", "Wow"
    assert again.clean_many(frame[schema.TEXT].iloc[[0, 3]], frame[schema.TITLE].iloc[[0, 3]]) == [
        expected[0], expected[3]
    ]  # fmt: skip
    assert (again.hits, again.misses) == (2, 0)
    assert compact_cache(tmp_path / "cache", snapshot_keys([kept])) == (0, 0)  # a second pass: nothing
    assert compact_cache(tmp_path / "missing", snapshot_keys([])) == (0, 0)
