"""report.html in a real browser: Debian's headless Chromium loads it with no console error and no network request,
renders every fusion configuration's label, and its size switch, table filter and explanation browser work.
CI installs chromium (.ci/run) and fails without it (CI=true); elsewhere the tests skip when it is absent."""
from __future__ import annotations

import os

import pytest

from headless_chromium import find_chromium, load_page
from html_fixtures import FUSIONS, fusion_label, write_results
from sweep.analysis.html import build_html

READY = ("document.body.dataset.reportReady === 'true' && typeof Bokeh !== 'undefined' "
         "&& Bokeh.index.roots.length > 0")
# a RadioButtonGroup button lives in Bokeh's shadow DOM: find it by its text and click it
CLICK_FLOPS = """(async () => {
  const find = node => { for (const child of (node.shadowRoot ? [node.shadowRoot, ...node.children] : node.children)) {
      if (child.tagName === 'BUTTON' && child.textContent.trim() === 'FLOPs') return child;
      const hit = find(child); if (hit) return hit; } return null; };
  find(document.body).click();
  await new Promise(resolve => setTimeout(resolve, 300));
  const plot = Bokeh.documents[0].get_model_by_name('size_figure');
  return plot.below[0].axis_label; })()"""
FILTER_BLOCK3 = """(async () => {
  const input = document.querySelector('#trials-table input');
  input.value = 'block3_drop';
  input.dispatchEvent(new Event('input'));
  return [document.querySelectorAll('#trials-table tbody tr').length,
          document.querySelector('#trials-table .count').textContent]; })()"""
SORT_BY_TEST_ACCURACY = """(() => {
  const headers = [...document.querySelectorAll('#trials-table th')];
  const column = headers.findIndex(th => th.textContent === 'test acc');
  headers[column].click();  // numbers sort high to low first
  return [...document.querySelectorAll('#trials-table tbody tr')].map(tr => Number(tr.children[column].textContent)); })()"""
EXPLANATION_IMAGES = "document.querySelectorAll('#explanation-browser .card img').length"


def require_chromium(find=find_chromium) -> str:
    """The browser's path; where it is missing, a skip on a developer's machine but a failure under CI=true,
    where a skip would hide that the report was never opened in a browser."""
    binary = find()
    if binary is None:
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail("chromium is missing in CI: .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    return binary


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_chromium()


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception),
                                         ("false", pytest.skip.Exception)])
def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome):
        require_chromium(find=lambda: None)


def test_the_report_renders_without_errors_and_names_every_fusion_configuration(tmp_path, chromium):
    page = build_html(write_results(tmp_path / "sweep"))
    loaded = load_page(page, READY, probes={"flops_axis": CLICK_FLOPS, "sorted": SORT_BY_TEST_ACCURACY,
                                            "filtered": FILTER_BLOCK3, "images": EXPLANATION_IMAGES},
                       binary=chromium)
    assert loaded.ready, "the page never finished rendering"
    assert loaded.errors == []
    assert loaded.requests == []  # works offline: nothing fetched from the network
    for cnn_cut, resnet_cut, branch, _ in FUSIONS:
        assert fusion_label(cnn_cut, resnet_cut, branch) in loaded.text
    assert "Accuracy rises with the log of params" in loaded.text
    assert loaded.probes["flops_axis"].startswith("FLOPs per image")
    assert len(loaded.probes["sorted"]) == 24 and loaded.probes["sorted"] == sorted(loaded.probes["sorted"], reverse=True)
    rows, count = loaded.probes["filtered"]
    assert rows == 6 and count == "6 of 24 rows"  # two block3_drop configurations x 3 seeds
    assert loaded.probes["images"] > 0  # synthetic data: images and overlays are shown


def test_real_xray_explanations_render_as_numbers_only(tmp_path, chromium):
    page = build_html(write_results(tmp_path / "real", synthetic=False))
    loaded = load_page(page, READY, probes={"images": EXPLANATION_IMAGES}, binary=chromium)
    assert loaded.ready and loaded.errors == [] and loaded.requests == []
    assert loaded.probes["images"] == 0
    assert "border share" in loaded.text
