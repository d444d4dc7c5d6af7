"""Notebook 06 in a real browser: JupyterLab + headless Debian Chromium, driven by Selenium.

The test starts JupyterLab on 127.0.0.1 (a free port, a random token, autosave
off, settings and workspaces in a temporary folder), opens
``notebooks/06_explore.ipynb``, runs all cells from the Run menu, and waits
until the explorer's widgets are rendered: the ipympl canvas (drawn), the
Dice text, the 3D render and the random-weights banner. A click on the canvas
must add a prompt point (the click reaches the kernel through ipympl). A
screenshot goes to ``reports/explorer_screenshot.png`` (or
``$EXPLORER_SCREENSHOT``). The notebook is never saved: its bytes must be
unchanged afterwards (and ``git diff`` empty).

Needs ``chromium`` and ``chromium-driver`` (Debian) and the ``selenium``
Python package; skipped with the reason when one is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "notebooks/06_explore.ipynb"
SCREENSHOT = Path(os.environ.get("EXPLORER_SCREENSHOT", ROOT / "reports" / "explorer_screenshot.png"))
SHARED = ROOT.parent / "shared" / "data" / "totalsegmentator-example"
RUN_TIMEOUT_S = int(os.environ.get("EXPLORER_RUN_TIMEOUT_S", 600))  # kernel start + SAM 2 (random weights, tiny, 256 px) on 2 CPU cores

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _find(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _get(url: str, timeout: float = 2.0) -> int:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1 only
        return resp.status


@pytest.fixture()
def browser_tools():
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium)")
    chromium = _find("chromium", "chromium-browser")
    driver = _find("chromedriver")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    if driver is None:
        pytest.skip("chromedriver is not installed (Debian: apt-get install chromium-driver)")
    if not (ROOT / "data" / "sample" / "meta.csv").is_file() and not SHARED.is_dir():
        pytest.skip(f"the sample scan is not built and its source files are not at {SHARED}")
    return chromium, driver


@pytest.fixture()
def jupyterlab(tmp_path):
    """A JupyterLab server on 127.0.0.1 rooted at the project; yields (base_url, token)."""
    port, token = _free_port(), secrets.token_hex(16)
    settings = tmp_path / "user-settings"
    for plugin, value in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {"checkForUpdates": False, "fetchNews": "false"},
    }.items():
        f = settings / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "MPLBACKEND": "agg"}
    log = (tmp_path / "jupyterlab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={ROOT}",
            f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            f"--FileCheckpoints.checkpoint_dir={tmp_path / 'checkpoints'}",  # absolute: nothing lands in notebooks/
            "--ServerApp.port_retries=0", "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),  # CI runs as root
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited ({proc.returncode}):\n{(tmp_path / 'jupyterlab.log').read_text()[-3000:]}")
            try:
                if _get(f"{base}/api/status?token={token}") == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start within 90 s")
            time.sleep(0.5)
        yield base, token
    finally:
        # shut down kernels and the server; kill our own process group if it lingers
        try:
            req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(req, timeout=10)  # noqa: S310
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _kernel_idle(base: str, token: str) -> bool:
    """The server reports the notebook's kernel idle (started and not busy)."""
    try:
        with urllib.request.urlopen(f"{base}/api/sessions?token={token}", timeout=5) as resp:  # noqa: S310
            sessions = json.load(resp)
    except OSError:
        return False
    return any(
        s.get("path", "").endswith(NOTEBOOK.split("/")[-1]) and (s.get("kernel") or {}).get("execution_state") == "idle"
        for s in sessions
    )


def _started(driver) -> bool:
    """Some cell of the notebook is running or has run (prompt ``[*]`` or ``[n]``)."""
    prompts = driver.find_elements("css selector", ".jp-NotebookPanel .jp-InputPrompt")
    return any(p.text.strip() not in ("", "[ ]:") for p in prompts)


def _text(driver, css: str) -> str:
    return " ".join(e.text for e in driver.find_elements("css selector", css))


def test_explorer_notebook_runs_in_jupyterlab(browser_tools, jupyterlab, tmp_path):
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, chromedriver = browser_tools
    base, token = jupyterlab
    nb_path = ROOT / NOTEBOOK
    before = _sha256(nb_path)

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 "--disable-sync", "--disable-extensions", "--window-size=1700,1500",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver, log_output=str(tmp_path / "driver.log")),
                              options=opts)
    try:
        wait = WebDriverWait(driver, 120)
        driver.get(f"{base}/lab/tree/{NOTEBOOK}?reset&token={token}")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell")))
        # the kernel must be up before running: idle for the server and in the toolbar
        wait.until(lambda d: _kernel_idle(base, token))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator[data-status='idle']"))

        # Run > Run All Cells (again if no cell started within 30 s: a click can land while the page settles)
        for attempt in range(3):
            driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell").click()  # focus the notebook
            run_menu = wait.until(EC.element_to_be_clickable(
                (By.XPATH, "//div[contains(@class,'lm-MenuBar-itemLabel') and normalize-space(text())='Run']")))
            run_menu.click()
            wait.until(EC.element_to_be_clickable(
                (By.CSS_SELECTOR, "li.lm-Menu-item[data-command='runmenu:run-all'],"
                                  "li.lm-Menu-item[data-command='notebook:run-all-cells']"))).click()
            try:
                WebDriverWait(driver, 30).until(lambda d: _started(d))
                break
            except TimeoutException:
                if attempt == 2:
                    driver.save_screenshot(str(SCREENSHOT.with_name(SCREENSHOT.stem + "_failed.png")))
                    pytest.fail("Run > Run All Cells did not start the notebook")

        long_wait = WebDriverWait(driver, RUN_TIMEOUT_S, poll_frequency=1)
        try:
            long_wait.until(lambda d: "Dice (3D" in _text(d, ".explorer-dice"))
        except TimeoutException:
            driver.save_screenshot(str(SCREENSHOT.with_name(SCREENSHOT.stem + "_failed.png")))
            errors = _text(driver, ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
            pytest.fail(f"the explorer's Dice text did not appear in {RUN_TIMEOUT_S} s; stderr: {errors[-2000:]}")

        # the ipympl canvas is there and drawn (its top canvas has a size and non-blank pixels)
        canvas = long_wait.until(EC.presence_of_element_located(
            (By.CSS_SELECTOR, ".explorer-canvas .jupyter-matplotlib-canvas-div canvas")))
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", canvas)
        drawn = """
            const cs = document.querySelectorAll('.explorer-canvas .jupyter-matplotlib-canvas-div canvas');
            for (const c of cs) {
              if (!c.width || !c.height) continue;
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
              let dark = 0;
              for (let i = 0; i < d.length; i += 4 * 97) if (d[i + 3] > 0 && d[i] < 60) dark++;
              if (dark > 50) return true;
            }
            return false;"""
        WebDriverWait(driver, 60).until(lambda d: d.execute_script(drawn))
        assert "RANDOM WEIGHTS - NOT RESULTS" in _text(driver, ".explorer-banner")
        render = driver.find_element(By.CSS_SELECTOR, ".explorer-3d")
        assert render.size["width"] > 50 and render.size["height"] > 50

        # a click on the image adds a positive point (kernel round trip through ipympl)
        status_css = ".explorer-ui .widget-html-content"
        n_before = _text(driver, status_css)
        assert "5 positive" in n_before, n_before
        ActionChains(driver).move_to_element(canvas).click().perform()
        try:
            WebDriverWait(driver, 30).until(lambda d: "6 positive" in _text(d, status_css))
        except TimeoutException:
            pytest.fail(f"a click on the canvas did not add a point; status: {_text(driver, status_css)[-500:]}")

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        ui = driver.find_element(By.CSS_SELECTOR, ".explorer-ui")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", ui)
        time.sleep(1.0)
        driver.save_screenshot(str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        driver.quit()

    assert _sha256(nb_path) == before, f"{NOTEBOOK} was modified by the browser session"
    if shutil.which("git") and (ROOT / ".git").exists():
        diff = subprocess.run(["git", "diff", "--stat", "--", NOTEBOOK], cwd=ROOT, capture_output=True, text=True)
        assert diff.stdout.strip() == "", diff.stdout
