"""The MLflow UI as a user sees it: a sweep and its comparison, opened in a real headless Chromium, walked from
the experiment list to the sweep's charts, the Dataset column, and a run's page with its curves.

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (dev extra); `.ci/run` installs the
browser and runs `python -m pytest -m e2e`. Screenshots are kept in $E2E_ARTIFACT_DIR (default outputs/e2e/).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from helpers import ROOT, train_cli
from trainer.tracking import ui_links

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
# --headless comes from headless=True, a fresh --user-data-dir from launch_persistent_context (playwright
# refuses that flag in args); the rest keeps the browser from reaching out or doing first-run work.
FLAGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 90_000  # the UI is slow to render on two shared cores


def _require_browser() -> None:
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        reason = "e2e test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI installs both: missing there is a broken setup, not a skip
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def artifact_dir() -> Path:
    path = Path(os.environ.get("E2E_ARTIFACT_DIR", ROOT / "outputs" / "e2e"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _start_ui(store: str, cwd: Path, log: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store, "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=cwd, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"mlflow ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(1)
    _stop(proc)
    raise AssertionError(f"mlflow ui did not answer on {url} within 180 s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    # The server runs in its own session: signal its process group, which holds the uvicorn worker too.
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def _dismiss_tip(page) -> None:
    # MLflow 3.17's GenAI overview pops a "Detect Issues" tip over the page; a user clicks "Got it" first.
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Got it").click(timeout=15_000)
    except PlaywrightTimeout:
        pass


def _ui_link(sweep_stdout: str, url: str) -> str:
    """The runs page the end of the sweep printed, on the test's port."""
    line = next(line for line in sweep_stdout.splitlines() if line.startswith("Its runs in the UI:"))
    return url + "/" + line.split("http://127.0.0.1:5000/", 1)[1]


def test_a_sweep_and_its_comparison_open_in_the_mlflow_ui(tmp_path, artifact_dir):
    """As a user: the printed link opens on the runs; from the experiment list the experiment opens, the sweep
    expands with each job's data in the Dataset column, the chart view shows val/ce; the parent run holds the
    comparison report; a run's page opens in the Model training layout with its dataset, its description's link to
    its learning curves, and its one-value metrics as bars."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    sweep = train_cli("-m", "loss=plain,weighted", "seed=0,1", "trainer.epochs=2", cwd=tmp_path)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    compare = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare.py")], cwd=tmp_path,
                             capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                                  if k != "MLFLOW_TRACKING_URI"})
    assert compare.returncode == 0, compare.stderr
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("ce-harness")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    jobs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    children = sorted(r.info.run_name for r in jobs)
    assert len(children) == 4
    digests = Counter(r.data.tags["data.source_fingerprint"][:8] for r in jobs)  # one file read: one digest
    job = jobs[0]
    curves = next((tmp_path / "outputs" / "compare").glob("*/curves.png"))

    server, url = _start_ui(store, tmp_path, tmp_path / "mlflow_ui.log")
    try:
        with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
            browser = p.chromium.launch_persistent_context(profile, executable_path=str(CHROMIUM), headless=True,
                                                           args=FLAGS, viewport={"width": 1600, "height": 1000})
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            parent_link = page.get_by_role("link", name=parent.info.run_name, exact=True)
            try:
                # 1. The link the sweep printed opens the experiment on its runs (MLflow 3.17 would open its
                # GenAI overview without ?workflowType=machine_learning).
                page.goto(_ui_link(sweep.stdout, url))
                parent_link.wait_for()
                assert page.get_by_role("heading", name="Runs").is_visible()
                page.screenshot(path=artifact_dir / "01_runs_from_the_printed_link.png")

                # 2. A user in a fresh browser: the experiment list, a click on the experiment.
                page.evaluate("localStorage.clear()")
                page.goto(f"{url}/#/experiments")
                page.get_by_test_id("experiment-list-item-link").filter(has_text=experiment.name).click()
                page.wait_for_url(f"**/experiments/{experiment.experiment_id}**")
                page.get_by_text("Model training", exact=True).wait_for()
                page.screenshot(path=artifact_dir / "02_experiment_opened.png")
                if not parent_link.is_visible():  # MLflow 3.17 opens on its GenAI pages: switch, as a user does
                    _dismiss_tip(page)
                    page.get_by_text("Model training", exact=True).click()
                parent_link.wait_for()

                # 3. Expand the sweep: every child under its readable name.
                row = page.get_by_role("row").filter(has=parent_link)
                row.get_by_role("gridcell").nth(1).get_by_role("button").first.click()
                for name in children:
                    page.get_by_role("link", name=name, exact=True).wait_for()
                listed = {a.inner_text() for a in page.get_by_role("link").all()}
                assert {parent.info.run_name, *children} <= listed
                # the Dataset column: each job's data by name and digest (data.source_fingerprint's first characters)
                for digest, count in digests.items():
                    page.get_by_text(f"digits ({digest})", exact=True).first.wait_for()
                    assert page.get_by_text(f"digits ({digest})", exact=True).count() == count
                page.screenshot(path=artifact_dir / "03_sweep_expanded.png", full_page=True)

                # 4. The chart view, searched for val/ce as a user would among its many panels.
                page.locator('label:has(input[name="runs-view-mode"][value="CHART"])').click()  # the chart icon
                page.get_by_placeholder("Search metric charts").fill("val/ce")
                page.get_by_text("val/ce", exact=True).first.wait_for()
                assert page.get_by_text("val/balanced_accuracy", exact=True).count() == 0  # filtered
                page.get_by_text("Step", exact=True).first.wait_for()  # the panels drew their axes
                page.screenshot(path=artifact_dir / "04_charts.png", full_page=True)

                # 5. The parent run's artifacts: the comparison report and the curves picture open.
                page.goto(f"{url}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}/artifacts")
                page.get_by_text("compare", exact=True).first.click()
                page.get_by_text("report.md", exact=True).click()
                page.get_by_text("ranked by test/balanced_accuracy", exact=False).first.wait_for()
                body = page.inner_text("body")
                assert "loss" in body and "plain" in body and "weighted" in body and "Wilcoxon" in body
                page.screenshot(path=artifact_dir / "05_parent_report.png", full_page=True)
                page.get_by_text("curves.png", exact=True).click()
                width, height = _png_size(curves)
                page.wait_for_function("([w, h]) => [...document.images].some(i => i.complete && "
                                       "i.naturalWidth === w && i.naturalHeight === h)", arg=[width, height])
                page.screenshot(path=artifact_dir / "06_parent_curves.png", full_page=True)

                # 6. A run's page, at the link a run prints: the Model training layout (not GenAI's "Evaluation
                # runs"), its data under Datasets, and its description linking the learning curves.
                digest = job.data.tags["data.source_fingerprint"][:8]
                page.goto(f"{url}/{ui_links.run_page(experiment.experiment_id, job.info.run_id)}")
                page.get_by_role("heading", name=job.info.run_name).wait_for()
                page.get_by_text(f"digits ({digest})", exact=True).wait_for()
                assert page.get_by_text(re.compile("^training$", re.IGNORECASE)).count() >= 1  # the dataset's context
                assert page.get_by_text("Evaluation runs").count() == 0
                page.screenshot(path=artifact_dir / "07_run_page.png", full_page=True)
                with browser.expect_page() as opened:  # MLflow opens description links in a new tab
                    page.get_by_role("link", name="cross-entropy", exact=True).click()
                curves_page = opened.value
                curves_page.set_default_timeout(TIMEOUT_MS)
                curves_page.get_by_text("train/ce vs val/ce", exact=True).wait_for()
                curves_page.locator(".scatterlayer .trace").first.wait_for()  # the two curves are drawn
                curves_page.screenshot(path=artifact_dir / "08_run_curves.png", full_page=True)
                curves_page.close()

                # 7. Its Model metrics tab: one-value metrics as bars with their value, per-epoch ones as curves.
                page.goto(f"{url}/#/experiments/{experiment.experiment_id}/runs/{job.info.run_id}/model-metrics"
                          "?workflowType=machine_learning")
                search = page.get_by_placeholder("Search metric charts")
                search.fill("test/balanced_accuracy")
                page.locator(".barlayer .point").first.wait_for()
                assert page.locator(".scatterlayer .trace").count() == 0
                search.fill("train/ce")
                page.locator(".scatterlayer .trace").first.wait_for()
                assert page.locator(".barlayer .point").count() == 0
                page.screenshot(path=artifact_dir / "09_run_metric_charts.png", full_page=True)
            except Exception:
                page.screenshot(path=artifact_dir / "failure.png", full_page=True)
                raise
            finally:
                browser.close()
    finally:
        _stop(server)
