"""Attribution scores on hand-made maps, shortcut flags, masker/trial checks and the explanations section."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sweep.explain import scores
from sweep.explain import models_table, runner, section, selection, shap_maps


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


def test_lung_share_and_the_share_of_a_uniform_map():
    lungs = np.zeros((10, 10), bool)
    lungs[2:8, 1:5] = True
    values = np.zeros((10, 10))
    values[3, 3], values[0, 9] = -3.0, 1.0
    assert scores.lung_share(values, lungs) == pytest.approx(0.75)
    assert scores.region_fraction(lungs) == pytest.approx(0.24)
    assert scores.lung_share(np.ones((10, 10)), lungs) == pytest.approx(scores.region_fraction(lungs))
    assert math.isnan(scores.lung_share(values, None)) and math.isnan(scores.region_fraction(None))
    assert scores.UNIFORM_BORDER_SHARE == pytest.approx(scores.border_share(np.ones((50, 50))))


def test_unusable_maps_are_nan_or_all_zero():
    assert scores.usable(np.ones((4, 4)))
    assert not scores.usable(np.zeros((4, 4)))
    nan = np.ones((4, 4))
    nan[1, 1] = np.nan
    assert not scores.usable(nan)


def test_bootstrap_mean_interval_covers_the_mean_and_skips_nan():
    mean, lo, hi, n = scores.bootstrap_mean([0.4, 0.5, 0.6, float("nan"), 0.5])
    assert n == 4 and mean == pytest.approx(0.5) and lo < 0.5 < hi and hi - lo < 0.2
    assert math.isnan(scores.bootstrap_mean([0.3, 0.4, 0.5])[1]) and scores.bootstrap_mean([])[3] == 0


def _image_rows(trial, border, marker=float("nan"), copy=float("nan"), nan_maps=0, lung=float("nan"), n=16):
    rows = [{"trial_id": trial, "image_id": f"i{i}", "label": i % 2, "pred": i % 2, "nan_map": False,
             "border_share": border + 0.01 * (i % 3 - 1), "marker_share": marker, "marker_copy_share": copy,
             "marker_uniform": 0.02, "lesion_share": float("nan"), "lung_share": lung, "lung_uniform": 0.3,
             "pointing_hit": float("nan"), "seconds": 1.0, "evals": 100} for i in range(n)]
    for row in rows[:nan_maps]:
        row.update(nan_map=True, border_share=float("nan"))
    return rows


def test_flag_needs_the_interval_to_clear_an_absolute_reference_not_the_other_models():
    # every model puts 0.44 on the border (uniform: 0.36): all flagged, though none stands out from the others
    rows = [models_table.model_row(t, _image_rows(t, 0.44)) for t in ("a", "b", "c")]
    assert [r["flag"] for r in rows] == ["border_share"] * 3
    assert rows[0]["border_share_lo"] > scores.UNIFORM_BORDER_SHARE
    assert models_table.model_row("d", _image_rows("d", 0.36))["flag"] == ""


def test_marker_flag_compares_with_the_marker_free_copies():
    leans = models_table.model_row("a", _image_rows("a", 0.3, marker=0.2, copy=0.01))
    ignores = models_table.model_row("b", _image_rows("b", 0.3, marker=0.03, copy=0.03))
    assert leans["marker_share_reference"] == pytest.approx(0.01) and leans["flag"] == "marker_share"
    assert ignores["flag"] == "" and ignores["marker_share_reference_is"] == "marker-removed copies"
    no_copies = models_table.model_row("c", _image_rows("c", 0.3, marker=0.2))
    assert no_copies["marker_share_reference"] == pytest.approx(0.02)  # the boxes' area
    outside = models_table.model_row("d", _image_rows("d", 0.3, lung=0.1))
    assert outside["flag"] == "lung_share"


def test_nan_maps_are_counted_and_left_out_of_the_shares():
    row = models_table.model_row("a", _image_rows("a", 0.44, nan_maps=15))
    assert row["n_images"] == 16 and row["n_nan"] == 15 and row["border_share_n"] == 1
    assert math.isnan(row["border_share_lo"]) and row["flag"] == ""  # one map gives no interval, hence no flag


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


def test_section_shows_intervals_references_nan_maps_and_models_left_out():
    models = [models_table.model_row("a", _image_rows("a", 0.44)),
              models_table.model_row("b", _image_rows("b", 0.30, nan_maps=3))]
    agreement = [{"image_id": "i", "trial_a": "a", "trial_b": "b", "spearman": 0.5}]
    text = section.render_section(models, agreement, {"a": 1e-3, "b": 2e-3}, synthetic=False, images=16,
                                  max_evals=300, masker="blur(16,16)", class_mode="true",
                                  labels_by_trial={"a": "cnn seed 0", "b": "fusion seed 0"},
                                  not_explained={"c": "collapsed"})
    assert text.startswith("## Explanations")
    assert "| cnn seed 0 | 16 (0) |" in text and "(ref 0.360)" in text
    assert "**possible shortcut** (border_share)" in text
    assert "**3 of 32 maps were NaN or all zero** (fusion seed 0: 3)" in text
    assert "Not explained: c (collapsed)" in text
    assert "Real X-rays" in text and "![" not in text
    assert "| 0.50 |" in text  # agreement matrix
    assert "3 min" in text  # 100,000 evals x 2 ms


def test_real_data_section_reports_border_share_by_class():
    rows = [{"label": 0, "border_share": 0.6}, {"label": 1, "border_share": 0.2}, {"label": 0, "border_share": 0.4},
            {"label": 1, "border_share": float("nan"), "nan_map": True}]
    by_class = section.border_by_class(rows, ("COVID", "Normal"))
    assert by_class == {"COVID": pytest.approx(0.5), "Normal": pytest.approx(0.2)}
    models = [models_table.model_row("a", _image_rows("a", 0.45))]
    text = section.render_section(models, [], {"a": 1e-3}, synthetic=False, images=16, max_evals=300,
                                  masker="blur(16,16)", class_mode="true", class_borders=by_class)
    assert "COVID 0.50, Normal 0.20" in text and "different sources" in text


def test_sweep_sample_is_chosen_once_and_reused(tmp_path):
    ids = np.array([f"img-{i}" for i in range(20)])
    labels = np.array([0] * 10 + [1] * 10)
    first = selection.sweep_sample(tmp_path, ids, labels, 6, seed=3)
    assert list(np.bincount(labels[first])) == [3, 3]
    again = selection.sweep_sample(tmp_path, ids, labels, 6, seed=99)  # images.csv wins over the seed
    assert list(again) == list(first)
    assert len(selection.sweep_sample(tmp_path, ids, labels, 8)) == 8  # another size: a new sample


def test_collapsed_trials_are_found_from_recalls(tmp_path):
    (tmp_path / "trials.csv").write_text(
        "trial_id,status,model,test_accuracy,recall_COVID,recall_Normal,test_support_COVID,test_support_Normal\n"
        "ok,TERMINATED,cnn,0.9,0.9,0.9,50,50\ncol,TERMINATED,fusion,0.5,1.0,0.0,50,50\n")
    assert selection.collapsed_trials(tmp_path) == {"col"}


def test_the_front_to_explain_is_drawn_over_trials_that_did_not_collapse(tmp_path):
    header = "trial_id,status,model,cnn_cut,resnet_cut,branch_width,head_width,seed,params,test_accuracy\n"
    (tmp_path / "trials.csv").write_text(header + "small,TERMINATED,fusion,block1_drop,,8,16,0,100,0.5\n"
                                         "mid,TERMINATED,fusion,block1_drop,,16,16,0,200,0.6\n"
                                         "big,TERMINATED,fusion,block2_drop,,8,16,0,900,0.55\n")
    (tmp_path / "pareto.csv").write_text("trial_id\nsmall\nmid\n")
    assert selection.select_trials(tmp_path, "pareto") == ["small", "mid"]
    assert selection.select_trials(tmp_path, "pareto", {"small"}) == ["mid"]
    assert selection.select_trials(tmp_path, "pareto", {"small", "mid"}) == ["big"]
    assert selection.select_trials(tmp_path, "small,big", {"small"}) == ["big"]


def test_inside_a_sweep_the_front_is_drawn_from_the_trials_before_pareto_csv_exists(tmp_path):
    """`fusion-sweep run` explains before its report writes pareto.csv; a healthy sweep (nothing collapsed) must
    still find its front, and a hand-written table without test accuracies still asks for pareto.csv."""
    header = "trial_id,status,model,cnn_cut,resnet_cut,branch_width,head_width,seed,params,test_accuracy\n"
    (tmp_path / "trials.csv").write_text(header + "small,TERMINATED,fusion,block1_drop,,8,16,0,100,0.5\n"
                                         "mid,TERMINATED,fusion,block1_drop,,16,16,0,200,0.6\n"
                                         "big,TERMINATED,fusion,block2_drop,,8,16,0,900,0.55\n")
    assert selection.select_trials(tmp_path, "pareto") == ["small", "mid"]
    (tmp_path / "trials.csv").write_text("trial_id,status,model\nt1,TERMINATED,fusion\n")
    with pytest.raises(FileNotFoundError, match="pareto.csv is missing"):
        selection.select_trials(tmp_path, "pareto")
