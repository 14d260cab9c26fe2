"""End to end in a real browser: `harness board` on a free port, driven by Debian's Chromium headless.

Playwright's own browser download cannot work here, so the test drives the system Chromium
(`.ci/run` installs it). Screenshots land in test-artifacts/board/ for people to look at.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.board_data import RUN_NAMES, fill_board_store

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "board"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing in CI: .ci/run installs the Debian package 'chromium'")
    pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); CI always runs this test", allow_module_level=True)

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"harness board exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"harness board did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def board(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("board_browser")
    url = f"sqlite:///{tmp / 'board.db'}"
    ids = fill_board_store(url, tiny_model, tmp, realistic=True)  # training run, sweep, drifting series, alarms
    port = _free_port()
    log = tmp / "board.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "board", "--db", url, "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, log)
        yield {"base": base, **ids}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


def _page(browser: Any) -> Any:
    """A page that records every console error and uncaught exception (checked by `_done`)."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # the first page load imports pandas and plotly in the server
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.set_default_timeout(60_000)
    page.problems = []

    def console(msg: Any) -> None:
        # a failed resource load is reported (with its URL) by the listeners below, not by this line
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            page.problems.append(f"console error: {msg.text}")

    def response(resp: Any) -> None:
        # Opening a page's own URL (/drift), Streamlit's frontend first probes /drift/_stcore/health and
        # host-config to find its base path; the 404 is how it learns the base is "/", not an error.
        probe = re.search(r"/[^/]+/_stcore/(health|host-config)$", resp.url)
        if resp.status >= 400 and resp.url.startswith("http://127.0.0.1") and not probe:
            page.problems.append(f"HTTP {resp.status}: {resp.url}")

    def failed(request: Any) -> None:
        # the board must work offline: only requests to the board itself count (Streamlit's optional
        # external fetches, e.g. fonts, fail on an offline machine and change nothing on the page)
        if request.url.startswith("http://127.0.0.1"):
            page.problems.append(f"request failed: {request.url} ({request.failure})")

    page.on("console", console)
    page.on("pageerror", lambda exc: page.problems.append(f"page error: {exc}"))
    page.on("response", response)
    page.on("requestfailed", failed)
    return page


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on `port`, from the kernel's tables (Linux /proc)."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            host, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(host)
                raw = raw[::-1] if family == socket.AF_INET else b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(family, raw))
    return found


def _outbound_addresses() -> set[str]:
    """This machine's non-loopback IPv4 addresses: those its name resolves to, and and those of every interface."""
    found = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    try:  # every interface's IPv4 address, as iproute2 lists them (no packet is sent)
        listed = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True, timeout=10).stdout
        found |= {line.split()[3].split("/")[0] for line in listed.splitlines() if len(line.split()) > 3}
    except (OSError, subprocess.SubprocessError):
        pass
    return {a for a in found if not a.startswith("127.")}


def _done(page: Any, shot: str | None = None) -> None:
    """Fail on a console error or a Streamlit exception box; keep a screenshot for people to look at."""
    page.wait_for_timeout(500)  # let late renders report their errors
    if shot:  # first, so a failing page can be looked at too
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, [boxes.nth(i).inner_text()[:500] for i in range(boxes.count())]
    assert not page.problems, page.problems
    page.close()


def test_board_binds_to_localhost_only(board: dict[str, Any]) -> None:
    """Checked twice, so it can never pass with zero checks: the kernel lists the listening socket
    on loopback only, and connecting through any non-loopback address of this machine is refused."""
    port = int(board["base"].rsplit(":", 1)[1])
    listening = _listening_addresses(port)
    if Path("/proc/net/tcp").is_file():
        assert listening and listening <= {"127.0.0.1", "::1"}, listening
    addresses = _outbound_addresses()
    assert addresses or listening, "no way to check the bind address on this machine"
    for address in addresses:
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(2)
            sock.connect((address, port))


def test_leaderboard_shows_the_stored_run_names(board: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    page = _page(browser)
    page.goto(board["base"] + "/")
    expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible()
    chart = page.locator('[data-testid="stPlotlyChart"] .main-svg').first
    expect(chart).to_be_visible()
    labels = page.locator('[data-testid="stPlotlyChart"] .xtick text').all_text_contents()
    for name in RUN_NAMES:
        assert any(label.startswith(name) for label in labels), (name, labels)
    grids = page.locator('[data-testid="stDataFrame"]')
    assert grids.count() == 2  # one table per suite: mmlu and rag-extraction, no rows of empty metrics
    for name in RUN_NAMES:
        expect(page.get_by_text(name, exact=True).first).to_be_attached()
    expect(page.get_by_text("None", exact=True)).to_have_count(0)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)
    page.get_by_role("link", name="Open this run").click()  # the run picked below the tables: the newest
    expect(page.get_by_role("heading", name="Run", exact=True)).to_be_visible()
    expect(page.get_by_text("gold-mixed", exact=True).first).to_be_visible()  # the nightly series is backdated
    assert f"run={board['mixed']}" in page.url
    _done(page)


def test_compare_page_renders_the_delta_chart(board: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    page = _page(browser)
    page.goto(f"{board['base']}/compare?a={board['even']}&b={board['mixed']}")
    expect(page.get_by_role("heading", name="Compare")).to_be_visible()
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart.locator(".scatterlayer .point").first).to_be_attached()
    assert chart.locator(".scatterlayer .point").count() >= 10  # one marker per shared metric
    expect(page.get_by_text("regressions", exact=True)).to_be_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    flips = page.locator('[data-testid="stDataFrame"]').nth(1)
    flips.scroll_into_view_if_needed()
    expect(flips).to_be_visible()
    expect(page.get_by_role("link", name="Compare")).to_be_visible()  # our navigation, not a folder listing
    page.screenshot(path=str(ARTIFACTS / "compare-flips.png"))
    _done(page)


@pytest.mark.parametrize(("path", "heading"), [
    ("run?run={even}", "Run"), ("checkpoints", "Checkpoints"), ("drift", "Drift & alarms"), ("sweeps", "Sweeps"),
])
def test_every_other_page_renders_its_charts_without_errors(board: dict[str, Any], browser: Any, path: str, heading: str) -> None:
    from playwright.sync_api import expect

    page = _page(browser)
    page.goto(f"{board['base']}/{path.format(**board)}")
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    expect(page.locator('[data-testid="stPlotlyChart"] .main-svg').first).to_be_visible()
    _done(page, path.split("?")[0])


def test_drift_page_shows_alarms_the_score_series_and_one_panel_per_statistic(board: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import expect

    page = _page(browser)
    page.goto(f"{board['base']}/drift")
    expect(page.get_by_role("heading", name="Alarms now")).to_be_visible()
    expect(page.get_by_text("alarm(s) firing").first).to_be_visible()
    expect(page.get_by_role("heading", name="Score series")).to_be_visible()
    charts = page.locator('[data-testid="stPlotlyChart"]')
    expect(charts.nth(1).locator(".main-svg").first).to_be_visible()
    assert charts.count() >= 2
    score_chart = charts.first
    expect(score_chart.get_by_text("change point").first).to_be_attached()
    expect(score_chart.get_by_text("alarm threshold h=5").first).to_be_attached()
    expect(page.get_by_text("Trend (Theil-Sen)").first).to_be_visible()
    _done(page, "drift")
