"""The report as a person would see it: headless Chromium opens it, runs its script, decodes its
figures and takes a screenshot; the page must load with no JavaScript or console errors, every
figure decoded, every panel in the DOM, and a screenshot that is not blank.

The page's own inline script writes what happened into the DOM (``data-viz-loaded``,
``data-viz-images``, ``data-viz-errors`` on <body>, messages in ``#viz-errors``), so the
``--dump-dom`` output carries the verdict without a DevTools client.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_viz_support import align_report

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists()
                                      else None)
        if path:
            return path
    pytest.skip("no Chromium here (Debian's `chromium`; make setup installs it when allowed): "
                "the report's browser check cannot run")


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
            *extra, page.resolve().as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def body_attributes(dom: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", dom)
    assert body, f"no <body> in the dumped DOM: {dom[:300]!r}"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


def dump(page: Path, tmp_path: Path) -> tuple[str, dict[str, str]]:
    # virtual time lets the load event and the page's script run before the DOM is dumped
    result = browse(page, tmp_path, "--virtual-time-budget=5000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, body_attributes(result.stdout)


def test_report_loads_in_chromium_with_every_panel_and_no_errors(tmp_path):
    index = align_report()
    dom, body = dump(index, tmp_path)
    errors = re.search(r'<div id="viz-errors"[^>]*>(.*?)</div>', dom, re.S)
    assert body.get("data-viz-loaded") == "yes", "the page's load handler never ran"
    assert body.get("data-viz-errors") == "0", errors.group(1) if errors else dom[-2000:]
    assert errors and errors.group(1).strip() == ""
    assert body.get("data-viz-images") == "8/8"
    for panel in ("lens", "attention", "cross", "norms", "compare"):
        assert f'data-panel="{panel}"' in dom, f"panel {panel} is missing from the page"

    shot = tmp_path / "report.png"
    result = browse(index, tmp_path, "--window-size=1280,2400", f"--screenshot={shot}")
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    from PIL import Image

    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2400)
    dark = sum(image.histogram()[:128]) / (image.size[0] * image.size[1])
    assert dark > 0.02, f"the screenshot is nearly blank ({dark:.1%} dark pixels)"


def test_the_error_check_has_teeth(tmp_path):
    """A page with a script error and a broken figure is reported as such."""
    broken = tmp_path / "broken.html"
    html = align_report().read_text(encoding="utf-8")
    html = html.replace("</footer>", "</footer><img alt='missing figure' src='nowhere.png'>"
                        "<script>undefinedFunction();</script>")
    broken.write_text(html, encoding="utf-8")
    dom, body = dump(broken, tmp_path)
    assert body.get("data-viz-loaded") == "yes"
    assert int(body.get("data-viz-errors", "0")) >= 2
    assert "undefinedFunction" in dom and "missing figure" in dom
    assert body.get("data-viz-images") == "8/9"
