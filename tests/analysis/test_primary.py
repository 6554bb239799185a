"""One primary question (params on test), the rest labelled secondary with Holm-adjusted p; verdict stability;
the primary sentence said once; accuracy intervals inside 0-100."""
from __future__ import annotations

import json

import numpy as np

from sweep.analysis import compare
from sweep.analysis.answer import FRAGILE, analyze, label_family, sentence
from sweep.analysis.html.points import mean_interval
from sweep.analysis.simulate import WORLD_TRUTHS, World, simulate_world_sweep, write_sweep


def _world(kind="saturating", seed=1, n_configs=8):
    return simulate_world_sweep(WORLD_TRUTHS[kind], World(), np.random.default_rng(seed), n_configs=n_configs)


def test_params_on_test_is_primary_and_the_secondaries_get_holm_adjusted_p():
    trials, predictions = _world()
    objects = {"test": {size: analyze(trials, predictions, size=size, n_boot=200, leave_one_out=False,
                                      stability=False) for size in ("params", "flops", "latency_ms")}}
    raw = {size: objects["test"][size]["p_constant"] for size in ("flops", "latency_ms")}
    label_family(objects)
    assert objects["test"]["params"]["primary"] and objects["test"]["params"]["p_holm"] == \
        objects["test"]["params"]["p_constant"]
    expected = compare.holm(np.array(list(raw.values())))
    for (size, p), adjusted in zip(raw.items(), expected):
        result = objects["test"][size]
        assert not result["primary"] and result["p_holm"] == adjusted >= p
        assert "Secondary analysis: Holm-adjusted p" in result["verdict_text"]


def test_stability_is_the_share_of_leave_one_out_refits_and_a_low_one_says_fragile():
    trials, predictions = _world("knee", seed=3)
    result = analyze(trials, predictions, n_boot=200, leave_one_out=False)
    assert 0.0 <= result["stability"] <= 1.0
    fragile = dict(result, stability=0.5)
    assert "fragile" in sentence(fragile, "test", per_image=True)
    assert "fragile" not in sentence(dict(result, stability=FRAGILE), "test", per_image=True)


def test_the_report_says_the_primary_verdict_once_and_names_the_primary_analysis(tmp_path):
    from sweep.analysis.report import build_report

    write_sweep(tmp_path, *_world("linear", seed=4, n_configs=6))
    build_report(tmp_path, bootstrap=100)
    report = (tmp_path / "report.md").read_text()
    primary = json.loads((tmp_path / "scaling.json").read_text())["test"]["params"]
    assert report.count(primary["verdict_text"]) == 1
    assert "primary analysis is test accuracy against parameters" in report
    assert "(secondary)" in report and "(primary)" in report


def test_accuracy_intervals_stay_inside_0_and_100():
    mean, lo, hi = mean_interval(np.array([99.0, 60.0]))        # 2 seeds far apart: a t interval in points ran past 100
    assert 0 <= lo <= mean <= hi <= 100
    low, high = compare.logit_interval(0.97, 0.05)
    assert 0 < low < 0.97 < high < 1
