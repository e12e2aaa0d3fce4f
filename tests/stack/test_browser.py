"""The Airflow UI of the local stack in headless Chromium (Debian's package, driven by Playwright):
log in, open the DAG's trigger form, check that the Params render with their titles,
descriptions and sections, change values, submit, and follow the run to its end.

Screenshots go to docs/screenshots/ (committed, shown in the README) and test-artifacts/stack/.
The browser and the sign-in come from conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from review_sentiment.model import GRIDS
from tests.stack.airflow_api import DAG_ID, FinishedRun
from tests.stack.conftest import RunningStack, logged_in_page, report, screenshot

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SECTIONS = ("Model grid", "Preprocessing", "Data source", "Promotion", "Monitoring")
# What the README's quick run types into the form, and nothing else: everything else keeps the
# DAG's defaults. Its small model usually loses to the champion; the run is green either way.
CHANGES: dict[str, Any] = {"max_epochs": 2, "sample_fraction": 0.2}
SWITCHES: dict[str, bool] = {}


@pytest.fixture(scope="module")
def page(browser: Any, running_stack: RunningStack, rest_run: FinishedRun) -> Iterator[Any]:
    """A logged-in page (the REST test's run has finished first: see ``rest_run``)."""
    with logged_in_page(browser, running_stack, DAG_ID) as page:
        yield page


@pytest.fixture(scope="module")
def ui_state() -> dict[str, Any]:
    """What the form test hands to the run test (the id of the run it triggered)."""
    return {}


def test_trigger_form_renders_the_params_and_submits_changed_values(
    page: Any, running_stack: RunningStack, ui_state: dict[str, Any]
) -> None:
    from playwright.sync_api import expect

    api = running_stack.api
    params = api.get(f"/dags/{DAG_ID}/details")["params"]
    before = {run["dag_run_id"] for run in api.runs()}

    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_text(f"Trigger Dag - {DAG_ID}")).to_be_visible()
    for section in SECTIONS:
        expect(dialog.get_by_role("button", name=section, exact=True)).to_be_visible()
    assert {p["schema"].get("section") for p in params.values()} == set(SECTIONS)

    # Each section (one open at a time): every param's title and description, as the API serves them.
    for section in (*[s for s in SECTIONS if s != "Model grid"], "Model grid"):
        dialog.get_by_role("button", name=section, exact=True).click()
        for name, param in params.items():
            if param["schema"].get("section") != section:
                continue
            # A field's label is its title with the required-field mark; .last: "Model grid" is
            # both a section and the title of its first field.
            label = re.compile(rf"^{re.escape(param['schema']['title'])}\s*\*?$")
            expect(dialog.get_by_text(label).last).to_be_visible()
            expect(dialog.get_by_text(param["description"], exact=True)).to_be_visible()
            if name in CHANGES:
                field = dialog.get_by_label(label)
                assert float(field.input_value()) == float(param["value"])
                field.fill(str(CHANGES[name]))
                field.press("Tab")
                expect(field).to_have_value(str(CHANGES[name]))
            if name in SWITCHES:
                switch = dialog.get_by_label(label)
                assert switch.is_checked() is bool(param["value"])
                switch.locator("xpath=..").click()  # the visible switch around the hidden input
                assert switch.is_checked() is SWITCHES[name]
    expect(dialog.get_by_label(re.compile(r"^Max epochs\s*\*?$"))).to_have_value(str(CHANGES["max_epochs"]))
    dialog.get_by_role("heading", name=f"Trigger Dag - {DAG_ID}").click()  # no focus ring in the picture
    screenshot(page, "trigger-form.png")

    dialog.get_by_role("button", name="Trigger", exact=True).click()
    page.wait_for_url(re.compile(rf".*/dags/{DAG_ID}/runs/.+"))

    new = [run for run in api.runs() if run["dag_run_id"] not in before]
    assert len(new) == 1, new
    run = new[0]
    ui_state["run_id"] = run["dag_run_id"]
    assert run["run_type"] == "manual"
    conf = run["conf"]
    assert conf["max_epochs"] == CHANGES["max_epochs"] != params["max_epochs"]["value"]
    for name, value in {**CHANGES, **SWITCHES}.items():
        assert conf[name] == value, (name, conf)
    for name, param in params.items():
        if name not in CHANGES and name not in SWITCHES:
            assert conf[name] == param["value"], (name, conf[name], param["value"])


def test_ui_triggered_run_succeeds_and_shows_in_the_grid(
    page: Any, running_stack: RunningStack, ui_state: dict[str, Any], pytestconfig: pytest.Config
) -> None:
    from playwright.sync_api import expect

    if "run_id" not in ui_state:
        pytest.fail("the trigger-form test started no run", pytrace=False)
    run_id = ui_state["run_id"]
    finished = running_stack.api.wait_for_run(run_id)
    report(
        pytestconfig,
        f"stack: UI-triggered run (default grid, {CHANGES['max_epochs']} epochs): {finished.timings()}",
    )
    assert finished.state == "success", finished.states()
    # One mapped train task per point of the default grid.
    assert sorted(i for t, i in finished.states() if t == "train") == list(range(len(GRIDS["default"])))

    page.goto(f"{running_stack.stack.airflow_url}/dags/{DAG_ID}/runs/{run_id}")
    expect(page.get_by_text(run_id, exact=True).first).to_be_visible()
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    outcome = "promote" if finished.states()[("promote", -1)] == "success" else "keep_champion"
    assert finished.states()[(outcome, -1)] == "success", finished.states()
    for task in (
        "ingest",
        "prepare_grid",
        "preprocess",
        "tokenize",
        "baseline",
        "register",
        "decide",
        outcome,
    ):
        expect(page.get_by_text(task, exact=True).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot(page, "run-grid.png")


def test_an_approval_is_answered_in_the_ui(
    page: Any, running_stack: RunningStack, pytestconfig: pytest.Config
) -> None:
    """A run that asks for approval waits; the approver opens the task's Required Actions, sees
    the scores and the links, and presses Reject: the champion stays."""
    from playwright.sync_api import expect

    from tests.stack.test_lifecycle import APPROVAL, _approval_waiting, _champion, _ran

    champion = _champion(running_stack)
    run_id = running_stack.api.trigger(APPROVAL)["dag_run_id"]
    request = _approval_waiting(running_stack, run_id)
    page.goto(
        f"{running_stack.stack.airflow_url}/dags/{DAG_ID}/runs/{run_id}/tasks/approval/required_actions"
    )
    expect(page.get_by_text(request["subject"]).first).to_be_visible()
    expect(page.get_by_text("TF-IDF + LR baseline").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot(page, "approval.png")
    page.get_by_role("button", name="Reject", exact=True).click()
    finished = running_stack.api.wait_for_run(run_id)
    assert finished.state == "success", finished.states()
    assert (_ran(finished, "keep_champion"), _ran(finished, "promote")) == ("success", "skipped")
    assert _champion(running_stack) == champion
    hitl = running_stack.api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails")
    assert hitl["chosen_options"] == ["Reject"], hitl
    report(pytestconfig, f"stack: an approval answered in the UI (Reject) kept champion v{champion}")


def test_the_assets_view_shows_the_champion_events(page: Any, running_stack: RunningStack) -> None:
    """The REST run's promotion updated the champion Asset: its page lists the event, made by
    ``sentiment_retrain``'s ``promote`` with the version in its extra."""
    from playwright.sync_api import expect

    api = running_stack.api
    [asset] = [a for a in api.get("/assets", limit=100)["assets"] if a["name"] == "sentiment_champion"]
    events = api.get("/assets/events", asset_id=asset["id"], limit=100)["asset_events"]
    assert events, asset
    assert {(e["source_dag_id"], e["source_task_id"]) for e in events} == {(DAG_ID, "promote")}
    assert all(e["extra"].get("version") for e in events), events
    page.goto(f"{running_stack.stack.airflow_url}/assets/{asset['id']}")
    expect(page.get_by_text("sentiment_champion").first).to_be_visible()
    expect(page.get_by_text(DAG_ID).first).to_be_visible()
    page.wait_for_load_state("networkidle")
    screenshot(page, "assets.png")
