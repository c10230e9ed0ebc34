"""The console as a person uses it, in headless Chromium: sign in; find a failed run,
see its failed step and compensations, retry it and watch it complete; answer a human
task through its form; open a flow whose expectation was violated; a reader sees no
action buttons; markup in a run id is shown as text; retry a workflow's failed runs in
bulk after a preview; redrive dead letters once their handler is fixed, one and all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.acceptance.cli_driver import REPO_ROOT, purchase
from tests.api.conftest import Server, eventually
from tests.console.conftest import screenshot


def sign_in(driver: WebDriver, site: Server, scope: str) -> None:
    driver.delete_all_cookies()
    driver.get(f"{site.base_url}/console/login")
    driver.find_element(By.ID, "token").send_keys(site.token(scope))
    driver.find_element(By.ID, "sign-in").click()
    until(driver, lambda: driver.current_url.endswith("/console/runs"), "the run list")


def until(driver: WebDriver, ready: Callable[[], Any], what: str, limit: float = 20) -> Any:
    deadline = time.monotonic() + limit
    while True:
        try:
            found = ready()
        except Exception:  # an element not there yet
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, (
            f"{what}: not there after {limit}s\n{driver.page_source[-3000:]}"
        )
        time.sleep(0.1)


def text(driver: WebDriver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def start(site: Server, workflow: str, run_id: str, body: Any) -> None:
    answer = site.as_scope("operate").post(
        "/api/runs", json={"workflow": workflow, "run_id": run_id, "input": body}
    )
    assert answer.status_code == 201, answer.text


def open_run(driver: WebDriver, site: Server, run_id: str, status: str) -> None:
    """Reload the run's page until it shows ``status``."""

    def shown() -> bool:
        driver.get(f"{site.base_url}/console/runs/{run_id}")
        return text(driver, "status") == status

    until(driver, shown, f"run {run_id} {status}")


def test_sign_in_is_needed_and_a_bad_token_is_refused(browser: WebDriver, site: Server) -> None:
    browser.delete_all_cookies()
    browser.get(f"{site.base_url}/console/runs")
    assert browser.current_url.endswith("/console/login")
    screenshot(browser, "sign-in")
    browser.find_element(By.ID, "token").send_keys("lgt_not-a-token")
    browser.find_element(By.ID, "sign-in").click()
    until(browser, lambda: "not a token this server knows" in text(browser, "error"), "refusal")
    cookies = {c["name"]: c for c in browser.get_cookies()}
    assert "legato_session" not in cookies


def test_a_compensated_course_purchase_shows_its_failed_step_and_compensations(
    browser: WebDriver, site: Server
) -> None:
    start(site, "purchase_course", "purchase-full", purchase(2, course="rust-301"))
    sign_in(browser, site, "read")
    session = {c["name"]: c for c in browser.get_cookies()}["legato_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"

    open_run(browser, site, "purchase-full", "compensated")

    assert "CourseFull" in text(browser, "last-error")
    assert "create_enrollment" in text(browser, "last-error")
    assert "authorize_payment" in text(browser, "compensated")
    until(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#graph svg"), "the graph")
    assert "authorize_payment" in text(browser, "graph")
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    assert any("undo authorize_payment" in r.text for r in rows), [r.text for r in rows]
    screenshot(browser, "run-compensated")


def test_retry_a_failed_run_and_watch_it_complete(
    browser: WebDriver, site: Server, tmp_path: Path
) -> None:
    fixed = tmp_path / "charge-fixed"
    order = {"id": "o-1", "fixed": str(fixed), "release_fixed": str(tmp_path / "r")}
    start(site, "pay", "order-failed", order)
    sign_in(browser, site, "operate")
    browser.get(f"{site.base_url}/console/runs?status=failed")
    until(browser, lambda: browser.find_element(By.LINK_TEXT, "order-failed"), "the failed run")
    screenshot(browser, "runs")
    browser.find_element(By.LINK_TEXT, "order-failed").click()
    until(browser, lambda: text(browser, "status") == "failed", "the failed run's page")
    assert "charge" in text(browser, "last-error")
    screenshot(browser, "run-failed")

    fixed.touch()  # the fix is deployed
    browser.find_element(By.ID, "action-retry").click()

    until(browser, lambda: text(browser, "notice") == "retry", "the run, retried")
    # Watched, not reloaded: the page refreshes itself until the run ends.
    until(browser, lambda: text(browser, "status") == "completed", "the run, live, completed")
    assert "nothing" in text(browser, "last-error")
    assert browser.find_elements(By.ID, "action-retry") == []
    until(browser, lambda: "completed" in text(browser, "graph"), "the graph drawn anew")
    assert "ch-o-1" in text(browser, "output")
    timeline = text(browser, "timeline")
    assert "run retried" in timeline and "by api-operate" in timeline


def test_complete_a_human_task_through_its_form(browser: WebDriver, site: Server) -> None:
    start(
        site,
        "fraud_review",
        "review-1",
        {"id": "review-1", "amount_cents": 12_500, "reviewer": None},
    )
    reader = site.as_scope("read")
    eventually(lambda: reader.get("/api/tasks", params={"run_id": "review-1"}).json(), "the task")
    sign_in(browser, site, "operate")
    browser.find_element(By.LINK_TEXT, "waiting on a person").click()  # a saved view
    until(browser, lambda: "review-1" in text(browser, "runs"), "the run waiting on a person")
    browser.get(f"{site.base_url}/console/tasks")
    until(browser, lambda: browser.find_element(By.PARTIAL_LINK_TEXT, "review-1"), "the task")
    screenshot(browser, "tasks")
    browser.find_elements(By.CSS_SELECTOR, "table a[href^='/console/tasks/']")[0].click()
    until(browser, lambda: "12500" in text(browser, "task-data"), "the task's data")
    assert text(browser, "assignee") == "not assigned"
    browser.find_element(By.ID, "claim").click()
    until(browser, lambda: text(browser, "assignee") == "assigned to api-operate", "the claim")
    assert browser.find_elements(By.ID, "claim") == []  # it is mine now
    form = browser.find_element(By.ID, "task-form")
    form.find_element(By.NAME, "approved").click()
    form.find_element(By.NAME, "note").send_keys("looks fine")
    screenshot(browser, "task")
    browser.find_element(By.ID, "submit").click()

    until(browser, lambda: text(browser, "notice") == "task completed", "the run, answered")
    open_run(browser, site, "review-1", "completed")
    review = orjson.loads(text(browser, "output"))["review"]
    assert review == {"approved": True, "note": "looks fine"}
    [done] = reader.get("/api/tasks", params={"run_id": "review-1", "status": "completed"}).json()
    assert done["completed_by"] == "api-operate"  # the signed-in token answered it


def test_a_flow_with_a_violated_expectation_is_drawn(browser: WebDriver, site: Server) -> None:
    env = {**os.environ, "LEGATO_DATABASE_URL": site.database, "PYTHONPATH": str(REPO_ROOT)}
    module = "examples.course_purchase.choreographed"
    done = subprocess.run(
        [sys.executable, "-m", module, "--enrollment-down", "--deadline", "1.5"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    reader = site.as_scope("read")
    [violated] = reader.get("/api/expectations", params={"status": "violated"}).json()
    sign_in(browser, site, "read")
    browser.get(f"{site.base_url}/console/expectations")
    assert "violated" in browser.find_element(By.TAG_NAME, "table").text
    browser.get(f"{site.base_url}/console/flows/{violated['correlation_id']}")

    until(browser, lambda: browser.find_element(By.CSS_SELECTOR, "#flow-graph svg"), "the flow")
    assert "paid-learner-is-enrolled" in text(browser, "expectations")
    assert "violated" in text(browser, "expectations")
    assert "purchase.completed" in text(browser, "flow-graph")
    screenshot(browser, "flow")


def test_a_reader_sees_no_action_buttons(browser: WebDriver, site: Server, tmp_path: Path) -> None:
    order = {"id": "o-2", "fixed": str(tmp_path / "never"), "release_fixed": str(tmp_path / "r")}
    start(site, "pay", "order-read", order)
    sign_in(browser, site, "read")
    open_run(browser, site, "order-read", "failed")
    assert browser.find_elements(By.ID, "actions") == []
    assert browser.find_elements(By.CSS_SELECTOR, "button[id^='action-']") == []
    # And the action itself is refused to a reader, form or no form.
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    refused = httpx.post(
        f"{site.base_url}/console/runs/order-read/act",
        data={"csrf": cookies["legato_csrf"], "action": "retry"},
        cookies=cookies,
    )
    assert refused.status_code == 403
    assert site.as_scope("read").get("/api/runs/order-read").json()["status"] == "failed"


def test_a_form_posted_without_the_browsers_csrf_token_is_refused(
    browser: WebDriver, site: Server, tmp_path: Path
) -> None:
    order = {"id": "o-3", "fixed": str(tmp_path / "fix"), "release_fixed": str(tmp_path / "r")}
    start(site, "pay", "order-csrf", order)
    sign_in(browser, site, "operate")
    open_run(browser, site, "order-csrf", "failed")
    (tmp_path / "fix").touch()
    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    forged = httpx.post(
        f"{site.base_url}/console/runs/order-csrf/act",
        data={"csrf": "guessed", "action": "retry"},
        cookies=cookies,
    )
    assert forged.status_code == 403
    assert site.as_scope("read").get("/api/runs/order-csrf").json()["status"] == "failed"


@pytest.mark.parametrize("run_id", ["<script>alert(1)</script>", '<img src=x onerror="alert(2)">'])
def test_markup_in_a_run_id_is_shown_as_text(browser: WebDriver, site: Server, run_id: str) -> None:
    start(site, "unserved_console", run_id, {"note": run_id})
    sign_in(browser, site, "read")
    browser.get(f"{site.base_url}/console/runs?workflow=unserved_console")
    until(browser, lambda: run_id in browser.find_element(By.ID, "runs").text, "the run")
    assert browser.find_elements(By.CSS_SELECTOR, "#runs img, #runs script") == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018  # no script ran
    browser.find_element(By.PARTIAL_LINK_TEXT, run_id[:6]).click()
    until(browser, lambda: text(browser, "run-id") == run_id, "the run's page")
    assert orjson.loads(text(browser, "input")) == [{"note": run_id}]
    assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []


def posted(driver: WebDriver, site: Server, path: str, form: dict[str, str]) -> httpx.Response:
    """``form`` posted to ``path`` with this browser's session and CSRF token, but no page:
    what a crafted request gets."""
    cookies = {c["name"]: c["value"] for c in driver.get_cookies()}
    return httpx.post(
        f"{site.base_url}{path}", data={"csrf": cookies["legato_csrf"], **form}, cookies=cookies
    )


def test_bulk_retry_of_a_workflows_failed_runs_previews_then_acts(
    browser: WebDriver, site: Server, tmp_path: Path
) -> None:
    # Given three failed runs of pay, fixed after the preview.
    fixed = tmp_path / "fixed"
    ids = [f"bulk-{n}" for n in range(1, 4)]
    for run_id in ids:
        start(site, "pay", run_id, {"id": run_id, "fixed": str(fixed), "release_fixed": "-"})
    reader = site.as_scope("read")
    eventually(
        lambda: all(reader.get(f"/api/runs/{r}").json()["status"] == "failed" for r in ids),
        "the runs to fail",
    )
    sign_in(browser, site, "operate")
    browser.get(f"{site.base_url}/console/runs?status=failed&workflow=pay&prefix=bulk-")
    until(browser, lambda: all(r in text(browser, "runs") for r in ids), "the failed runs")
    assert browser.find_element(By.ID, "bulk-action").get_attribute("value") == "retry"

    # When the operator previews a bulk retry, deploys the fix and confirms it.
    browser.find_element(By.ID, "bulk-preview").click()
    until(browser, lambda: text(browser, "bulk-count") == "3", "the preview's count")
    assert sorted(text(browser, "bulk-sample").split()) == ids
    screenshot(browser, "bulk-preview")
    confirm = browser.find_element(By.NAME, "confirm").get_attribute("value")
    fixed.touch()
    browser.find_element(By.ID, "bulk-confirm").click()

    # Then the three are retried, by the operator, and leave failed.
    until(browser, lambda: text(browser, "bulk-done") == "Acted on 3 runs.", "the result")
    assert sorted(text(browser, "bulk-acted").split()) == ids
    screenshot(browser, "bulk-result")
    for run_id in ids:
        done = eventually(
            lambda r=run_id: reader.get(f"/api/runs/{r}").json()["status"] == "completed",
            f"{run_id} to complete",
        )
        assert done
    # Confirming the same preview again does nothing: its runs are no longer failed.
    form = {"action": "retry", "confirm": confirm, "status": "failed", "prefix": "bulk-"}
    again = posted(browser, site, "/console/bulk/apply", {**form, "workflow": "pay"})
    assert again.status_code == 200
    assert 'id="changed"' in again.text and '<span id="bulk-count">0</span>' in again.text


def test_a_reader_gets_no_bulk_form_and_no_redrive_and_is_refused_both(
    browser: WebDriver, site: Server, tmp_path: Path
) -> None:
    order = {"id": "o-4", "fixed": str(tmp_path / "never"), "release_fixed": "-"}
    start(site, "pay", "bulk-read", order)
    event = site.as_scope("operate").post(
        "/api/events", json={"type": "api.doomed", "id": "doomed-read", "subject": "read"}
    )
    assert event.status_code == 201, event.text
    sign_in(browser, site, "read")
    browser.get(f"{site.base_url}/console/runs?status=failed&prefix=bulk-read")
    until(browser, lambda: "bulk-read" in text(browser, "runs"), "the failed run")
    assert browser.find_elements(By.ID, "bulk-form") == []

    def listed() -> bool:
        browser.get(f"{site.base_url}/console/dead-letters?subscription=doomed")
        return "doomed-read" in text(browser, "dead-letters")

    until(browser, listed, "the dead letter")
    assert browser.find_elements(By.CSS_SELECTOR, "button.redrive, #redrive-all") == []

    filters = {"status": "failed", "prefix": "bulk-read", "action": "retry"}
    assert posted(browser, site, "/console/bulk", filters).status_code == 403
    applied = posted(browser, site, "/console/bulk/apply", {**filters, "confirm": "x"})
    assert applied.status_code == 403
    one = {"subscription": "doomed", "event_id": "doomed-read"}
    assert posted(browser, site, "/console/dead-letters/redrive", one).status_code == 403
    every = {"subscription": "doomed"}  # a reader may not even preview it
    assert posted(browser, site, "/console/dead-letters/redrive", every).status_code == 403
    every["confirm"] = "x"
    assert posted(browser, site, "/console/dead-letters/redrive", every).status_code == 403
    reader = site.as_scope("read")
    assert reader.get("/api/runs/bulk-read").json()["status"] == "failed"
    [delivery] = reader.get("/api/events/doomed-read").json()["deliveries"]
    assert delivery["status"] == "dead"


def test_dead_letters_are_redriven_one_and_all_once_fixed(
    browser: WebDriver, site: Server, tmp_path: Path
) -> None:
    # Given two dead letters of a subscriber that fails until fixed.
    fixed = tmp_path / "handler-fixed"
    operator, reader = site.as_scope("operate"), site.as_scope("read")
    for event_id in ("fragile-1", "fragile-2"):
        body = {"type": "console.fragile", "id": event_id, "data": {"fixed": str(fixed)}}
        answer = operator.post("/api/events", json={**body, "subject": event_id})
        assert answer.status_code == 201, answer.text
    sign_in(browser, site, "operate")

    def listed() -> bool:
        browser.get(f"{site.base_url}/console/dead-letters?subscription=console-fragile")
        shown = text(browser, "dead-letters")
        return "fragile-1" in shown and "fragile-2" in shown

    until(browser, listed, "the dead letters")
    table = text(browser, "dead-letters")
    assert "Unfixed: no fix deployed for fragile-1" in table
    assert "Traceback" not in browser.page_source  # it names the server's files
    assert browser.find_elements(By.CSS_SELECTOR, "a[href='/console/flows/fragile-1']")
    screenshot(browser, "dead-letters")

    # When the fix is deployed, one is redriven from its row and then all the rest.
    fixed.touch()
    row = browser.find_element(By.XPATH, "//tr[td[normalize-space()='fragile-1']]")
    row.find_element(By.CSS_SELECTOR, "button.redrive").click()
    notice = "redriven: 1 dead letter pending again"
    until(browser, lambda: text(browser, "notice") == notice, "the redrive")
    browser.find_element(By.ID, "redrive-all").click()
    until(browser, lambda: "1 dead letter will" in text(browser, "redrive-count"), "the count")
    assert text(browser, "redrive-sample") == "fragile-2"
    browser.find_element(By.ID, "redrive-confirm").click()
    until(browser, lambda: text(browser, "notice") == notice, "the redrive of all")

    # Then both are delivered, and the subscription has no dead letters left.
    for event_id in ("fragile-1", "fragile-2"):

        def delivered(e: str = event_id) -> bool:
            [delivery] = reader.get(f"/api/events/{e}").json()["deliveries"]
            assert delivery["status"] in ("pending", "done"), delivery
            assert delivery["redriven_by"] == "api-operate"
            return delivery["status"] == "done"

        eventually(delivered, f"{event_id} delivered")
    browser.get(f"{site.base_url}/console/dead-letters?subscription=console-fragile")
    assert "no dead letters for this subscription" in text(browser, "dead-letters")
    stale = {"subscription": "console-fragile", "confirm": "an-old-preview"}
    again = posted(browser, site, "/console/dead-letters/redrive", stale)
    assert again.status_code == 200 and "nothing was done" in again.text  # asked anew
    assert "0 dead letters will be delivered again" in again.text


def test_the_event_log_filters_and_pages(browser: WebDriver, site: Server) -> None:
    # Given 201 events of a type one subscriber takes, in one CloudEvents batch, and one
    # nobody listens to.
    batch = [
        {"specversion": "1.0", "type": "api.audited", "source": "/t", "id": f"many-{n:03d}"}
        for n in range(201)
    ]
    operator = site.as_scope("operate")
    headers = {"Content-Type": "application/cloudevents-batch+json"}
    answer = operator.post("/api/events", content=orjson.dumps(batch), headers=headers)
    assert answer.status_code == 201, answer.text
    lonely = {"type": "console.nobody-listens", "id": "lonely-1", "data": {}}
    assert operator.post("/api/events", json=lonely).status_code == 201
    sign_in(browser, site, "read")

    # The first page holds 200, in log order; the next one the last.
    browser.get(f"{site.base_url}/console/events?type=api.audited")
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert len(rows) == 200 and "many-000" in rows[0].text and "many-199" in rows[-1].text
    browser.find_element(By.ID, "more").click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#events tbody tr")
    assert [r.text.split()[3] for r in rows] == ["many-200"]
    assert browser.find_elements(By.ID, "more") == []

    # Unrouted only, and a since that is not a time.
    browser.get(f"{site.base_url}/console/events?unrouted=1&since=-1h")
    shown = text(browser, "events")
    assert "lonely-1" in shown and "unrouted" in shown and "many-" not in shown
    browser.get(f"{site.base_url}/console/events?since=yesterday")
    assert "not a time: 'yesterday'" in text(browser, "error")
