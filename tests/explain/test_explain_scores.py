"""Attribution scores on hand-made maps, shortcut flags, masker/trial checks and the explanations section."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sweep.explain import scores
from sweep.explain import runner, section, shap_maps


def test_border_share_of_uniform_and_of_centre_maps():
    assert scores.border_share(np.ones((20, 20))) == pytest.approx(1 - 0.8 ** 2)
    centre = np.zeros((20, 20))
    centre[5:15, 5:15] = -3.0  # sign does not matter: |SHAP| mass
    assert scores.border_share(centre) == 0.0
    edge = np.zeros((20, 20))
    edge[0, :] = 1.0
    edge[10, 10] = 1.0
    assert scores.border_share(edge[..., None]) == pytest.approx(20 / 21)


def test_marker_share_uses_abs_mass_in_end_exclusive_box():
    values = np.zeros((10, 10))
    values[0:2, 0:3] = -1.0  # 6 px inside the box, negative
    values[9, 9] = 2.0
    assert scores.marker_share(values, [0, 0, 2, 3]) == pytest.approx(6 / 8)
    assert math.isnan(scores.marker_share(values, [-1, -1, -1, -1]))
    assert math.isnan(scores.marker_share(values, None))


def test_lesion_share_counts_positive_mass_only_and_pointing():
    values = np.zeros((8, 8))
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    values[2, 2] = 3.0
    values[6, 6] = 1.0
    values[3, 3] = -5.0  # negative evidence inside the lesion is ignored
    assert scores.lesion_share(values, mask) == pytest.approx(0.75)
    assert scores.pointing_hit(values, mask) == 1.0
    values[7, 7] = 4.0
    assert scores.pointing_hit(values, mask) == 0.0
    assert math.isnan(scores.lesion_share(values, np.zeros((8, 8), bool)))
    assert math.isnan(scores.pointing_hit(values, None))


def test_spearman_is_rank_based_and_nan_for_constant_maps():
    a = np.arange(16.0).reshape(4, 4)
    assert scores.spearman(a, a ** 3) == pytest.approx(1.0)
    assert scores.spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(scores.spearman(a, np.zeros((4, 4))))


def test_shortcut_flag_needs_ratio_over_median_of_others_and_floor():
    flags = scores.shortcut_flags({"a": 0.5, "b": 0.1, "c": 0.12}, "marker_share")
    assert flags == {"a": True, "b": False, "c": False}
    # far above the others but under the absolute floor: not flagged
    assert not scores.shortcut_flags({"a": 0.08, "b": 0.01, "c": 0.01}, "marker_share")["a"]
    # a single model has nothing to compare with
    assert scores.shortcut_flags({"a": 0.9}, "marker_share") == {"a": False}
    assert not scores.shortcut_flags({"a": float("nan"), "b": 0.1}, "border_share")["a"]


@pytest.mark.parametrize("good,canonical", [("blur(16,16)", "blur(16,16)"), (" blur( 8, 4 ) ", "blur(8,4)"),
                                            ("inpaint_telea", "inpaint_telea"), ("inpaint_ns", "inpaint_ns")])
def test_masker_forms_accepted(good, canonical):
    assert shap_maps.check_masker(good) == canonical


@pytest.mark.parametrize("bad", ["blur(0,4)", "blur(4)", "gauss", "inpaint", ""])
def test_unknown_masker_lists_allowed_forms(bad):
    with pytest.raises(ValueError, match=r"blur\(k,k\), inpaint_telea, inpaint_ns"):
        shap_maps.check_masker(bad)


def test_balanced_sample_is_class_balanced_fixed_and_bounded():
    labels = np.array([0] * 10 + [1] * 3)
    idx = runner.balanced_sample(labels, 6, seed=1)
    assert list(np.bincount(labels[idx])) == [3, 3]
    assert list(idx) == list(runner.balanced_sample(labels, 6, seed=1))
    assert list(np.bincount(labels[runner.balanced_sample(labels, 9)])) == [6, 3]
    with pytest.raises(ValueError, match="only 13"):
        runner.balanced_sample(labels, 14)


def _sweep_dir(tmp_path, with_ckpt=("t1", "t2", "cnn0")):
    (tmp_path / "trials.csv").write_text(
        "trial_id,status,model\nt1,ok,fusion\nt2,ok,fusion\nt3,ok,fusion\ncnn0,ok,cnn\n")
    (tmp_path / "pareto.csv").write_text("trial_id,params,test_accuracy\nt1,10,0.9\n")
    for t in ("t1", "t2", "t3", "cnn0"):
        (tmp_path / "trials" / t / "checkpoints").mkdir(parents=True)
        if t in with_ckpt:
            (tmp_path / "trials" / t / "checkpoints" / "best").write_text("x")
    return tmp_path


def test_select_trials_pareto_parents_all_and_explicit(tmp_path):
    d = _sweep_dir(tmp_path)
    assert runner.select_trials(d) == ["t1", "cnn0"]
    assert runner.select_trials(d, "pareto") == ["t1"]
    assert runner.select_trials(d, "parents") == ["cnn0"]
    assert runner.select_trials(d, "all") == ["t1", "t2", "t3", "cnn0"]
    assert runner.select_trials(d, "t2,t1") == ["t2", "t1"]


def test_trial_without_checkpoint_fails_before_work(tmp_path):
    d = _sweep_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="t3: no checkpoint"):
        runner.trial_dirs(d, ["t1", "t3"])
    with pytest.raises(FileNotFoundError, match="nope: no run dir"):
        runner.explain_results(d, trials="nope")
    with pytest.raises(ValueError, match="unknown masker"):
        runner.explain_results(d, masker="blur")


def test_section_flags_and_real_data_text():
    means = {t: {"accuracy": 1.0, "border_share": b, "marker_share": float("nan"), "lesion_share": float("nan"),
                 "pointing_hit": float("nan"), "seconds": 1.0, "evals": 300.0, "overhead_ratio": 1.1}
             for t, b in (("a", 0.8), ("b", 0.3), ("c", 0.32))}
    flags = section.shortcut_reasons(means)
    assert flags == {"a": ["border_share"], "b": [], "c": []}
    agreement = [{"image_id": "i", "trial_a": "a", "trial_b": "b", "spearman": 0.5}]
    text = section.render_section(means, flags, agreement, {"a": 1e-3, "b": 2e-3, "c": 1e-3}, synthetic=False,
                                  images=4, max_evals=300, masker="blur(16,16)", class_mode="true")
    assert text.startswith("## Explanations")
    assert "**possible shortcut** (border_share)" in text
    assert "Real X-rays" in text and "![" not in text
    assert "| 0.50 |" in text  # agreement matrix
    assert "3 min" in text  # 100,000 evals x 2 ms


def test_real_data_section_reports_border_share_by_class():
    rows = [{"label": 0, "border_share": 0.6}, {"label": 1, "border_share": 0.2}, {"label": 0, "border_share": 0.4}]
    by_class = section.border_by_class(rows, ("COVID", "Normal"))
    assert by_class == {"COVID": pytest.approx(0.5), "Normal": pytest.approx(0.2)}
    means = {"a": {"accuracy": 1.0, "border_share": 0.45, "marker_share": float("nan"), "lesion_share": float("nan"),
                   "pointing_hit": float("nan"), "seconds": 1.0, "evals": 300.0, "overhead_ratio": 1.0}}
    text = section.render_section(means, {"a": []}, [], {"a": 1e-3}, synthetic=False, images=2, max_evals=300,
                                  masker="blur(16,16)", class_mode="true", class_borders=by_class)
    assert "COVID 0.50, Normal 0.20" in text and "different sources" in text
