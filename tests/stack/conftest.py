"""Session fixtures of the stack tests: ``python -m scripts.local_stack up`` (``make stack``: the services of
docker-compose.yaml under supervisord) on free loopback ports, in a temporary state folder with its
own .env, and ``python -m scripts.local_stack down`` at the end (by pid).

Only tests that request ``running_stack`` start it; the static compose tests beside them do not.
The UI tests share the headless browser (Debian's Chromium driven by Playwright; Chromium is never
downloaded: ``.ci/run`` installs /usr/bin/chromium), one per module that asks for it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scripts.local_stack.stack import Stack
from tests.stack.airflow_api import AirflowApi, FinishedRun
from tests.support import measure
from tests.support.local_stack import StackSession, stack_session
from tests.support.mail import MailServer, connection, start_mail_server
from tests.support.quick_run import QUICK_CONF

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "stack"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = ROOT / "docs" / "screenshots"


@dataclass
class RunningStack:
    """The stack under test, its admin API client, and what happened when it started."""

    session: StackSession
    api: AirflowApi
    secrets: dict[str, str]
    started_at: datetime
    scheduled_at_start: list[dict[str, Any]]
    mail: MailServer  # the SMTP server on loopback the stack's smtp_default connection points at
    timings: dict[str, float] = field(default_factory=dict)

    def mails_of(self, run_id: str) -> list[Any]:
        """The mails received about one DAG run (its id is in every subject)."""
        return [message for _, message in self.mail.inbox.messages if run_id in message["Subject"]]

    @property
    def stack(self) -> Stack:
        """The stack as last started (``up`` again reloads it)."""
        return self.session.stack


def report(config: pytest.Config, line: str) -> None:
    """A measured figure to the CI log and test-artifacts/stack/measurements.txt."""
    measure.report(config, line, ARTIFACTS)


def _scheduled_runs_at_start(api: AirflowApi, timeout: float = 180) -> list[dict[str, Any]]:
    """The scheduled runs once the scheduler has planned the DAG's first run.

    The DAG has no start_date and run_immediately=0, so a new deployment must wait for the next
    Monday slot rather than start a full retrain at once.
    """
    deadline = time.monotonic() + timeout
    while not api.dag().get("next_dagrun_run_after"):
        assert time.monotonic() < deadline, f"the scheduler planned no run within {timeout:.0f}s"
        time.sleep(1)
    time.sleep(5)  # a few scheduler loops: a due run would have been created by now
    return api.runs(run_type="scheduled")


@pytest.fixture(scope="session")
def running_stack(real_reviews_path: Path, pytestconfig: pytest.Config) -> Iterator[RunningStack]:
    """``make stack``'s script on free ports, mailing to an SMTP server on loopback (set in .env
    as an operator would); stopped by ``python -m scripts.local_stack down`` afterwards."""
    started = datetime.now(UTC)
    mail = start_mail_server()
    dotenv = {
        "SENTIMENT_NOTIFY_TO": "ml-team@example.org",
        "AIRFLOW_CONN_SMTP_DEFAULT": connection(mail.port),
    }
    try:
        with stack_session(real_reviews_path, ARTIFACTS, "sentiment-stack-", dotenv=dotenv) as session:
            report(pytestconfig, f"stack: scripts.local_stack up took {session.up_seconds:.0f} s")
            scheduled = _scheduled_runs_at_start(session.api)
            yield RunningStack(session, session.api, session.secrets, started, scheduled, mail)
    finally:
        mail.stop()


@pytest.fixture(scope="session")
def rest_run(running_stack: RunningStack, pytestconfig: pytest.Config) -> FinishedRun:
    """The quick run, triggered through the REST API: the first run of the session to finish.

    The other tests that run the DAG request it first: its register step then meets an empty
    registry, so its candidate passes the gate on the floor alone, whatever the test order.
    """
    api = running_stack.api
    created = api.trigger(QUICK_CONF)
    finished = api.wait_for_run(created["dag_run_id"])
    running_stack.timings["local_trigger_to_first_task_s"] = finished.trigger_to_first_task_s
    running_stack.timings["local_wall_time_s"] = finished.wall_time_s
    report(
        pytestconfig,
        f"stack: REST-triggered run on LocalExecutor: {finished.timings()}",
    )
    return finished


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium for one test module (skipped without it, except on CI)."""
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; on CI the browser test must run", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def logged_in_page(browser: Any, running_stack: RunningStack, dag_id: str) -> Iterator[Any]:
    """A page of the Airflow UI on ``dag_id``'s page, signed in as the stack's admin."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{running_stack.stack.airflow_url}/dags/{dag_id}")
    page.get_by_label("Username").fill(running_stack.secrets["AIRFLOW_ADMIN_USERNAME"])
    page.get_by_label("Password").fill(running_stack.secrets["AIRFLOW_ADMIN_PASSWORD"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf".*/dags/{dag_id}$"))
    try:
        yield page
    finally:
        context.close()


def screenshot(page: Any, name: str) -> None:
    """The page to test-artifacts/stack/ and docs/screenshots/ (committed, shown in the README)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))
    shutil.copyfile(ARTIFACTS / name, SCREENSHOTS / name)
