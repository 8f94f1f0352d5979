"""The self-contained batch report (report/report.html): its content, that it needs no network, and that
headless Chromium (Debian's chromium, installed by scripts/setup.sh) renders the verdict and failed checks
with the network off. The screenshot is kept under the test's tmp dir and its path printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from prefmix.config import Config
from prefmix.validators.gate import GateResult, run_gate
from tests.validators.batches import clean_frame, write_batch

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
# As root in a sandbox-less container; nothing may reach out (the proxy is a closed local port).
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-extensions", "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>", "--hide-scrollbars",
]


def failing_batch(tmp: Path) -> tuple[GateResult, Path]:
    """A batch failing a critical check (chosen == rejected) and a warning (refusals)."""
    frame = clean_frame()
    chosen, rejected = frame["chosen"].to_list(), frame["rejected"].to_list()
    rejected[3] = chosen[3]
    for row in (0, 1, 2, 40, 41, 42, 80, 81, 82):
        chosen[row] = "I'm sorry, but I can't help with that."
    frame = frame.with_columns(pl.Series("chosen", chosen), pl.Series("rejected", rejected))
    config = Config()
    batch_dir = write_batch(tmp, frame)
    return run_gate(config, batch_dir), batch_dir


@pytest.fixture(scope="module")
def failed_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[GateResult, Path]:
    return failing_batch(tmp_path_factory.mktemp("report"))


def test_the_report_is_one_file_with_verdict_checks_samples_and_composition(failed_report: tuple[GateResult, Path]) -> None:
    result, batch_dir = failed_report
    page = Path(result.report.html or "")
    assert page == batch_dir / "report" / "report.html"
    text = page.read_text(encoding="utf-8")
    assert result.verdict == "fail" and result.failed_critical == ["chosen_differs"]
    assert result.failed_warning == ["refusal_share"]
    assert "Gate verdict: FAIL" in text
    for check in result.checks:  # every check with its figure and threshold
        assert f"<code>{check.name}</code>" in text
    assert 'id="samples-chosen_differs"' in text and 'id="samples-refusal_share"' in text
    assert result.check("chosen_differs").samples[0]["record_id"] in text
    assert 'id="composition"' in text and 'id="agreement"' in text
    assert text.count('src="data:image/png;base64,') >= 1


def test_the_report_references_nothing_outside_itself(failed_report: tuple[GateResult, Path]) -> None:
    text = Path(failed_report[0].report.html or "").read_text(encoding="utf-8")
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    sources = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text)
    assert sources and all(s.startswith("data:") or not re.match(r"[a-z][a-z0-9+.-]*:", s) for s in sources), sources
    assert not re.search(r"url\(\s*['\"]?(?!data:)", text)  # no CSS fetches either
    assert not re.search(r"https?://", text)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],  # type: ignore[list-item]
                          capture_output=True, text=True, timeout=120)


def test_headless_chromium_renders_the_verdict_and_failed_checks_offline(
        failed_report: tuple[GateResult, Path], tmp_path: Path) -> None:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: scripts/setup.sh installs Debian's chromium package")
        pytest.skip("chromium not installed (scripts/setup.sh installs it)")
    result, batch_dir = failed_report
    # A copy somewhere else: the report must not lean on files beside it.
    page = tmp_path / "elsewhere" / "report.html"
    page.parent.mkdir()
    shutil.copy(result.report.html or "", page)
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dom.stdout
    assert re.search(r'id="verdict"[^>]*>Gate verdict: FAIL<', rendered)
    failed = re.search(r'<ul class="failed" id="failed-critical">(.*?)</ul>', rendered, re.S)
    assert failed and "<code>chosen_differs</code>" in failed.group(1)
    warned = re.search(r'<ul class="failed" id="failed-warning">(.*?)</ul>', rendered, re.S)
    assert warned and "<code>refusal_share</code>" in warned.group(1)
    shot = tmp_path / "report.png"
    taken = _chromium(f"--screenshot={shot}", "--window-size=1280,2400", page.as_uri(), profile=tmp_path / "profile-shot")
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    print(f"report screenshot: {shot}")
