"""Synthetic acquisition sites: their class mix makes a burnt-in marker predictive, an image can be drawn again
without its marker or its brightness shift (same id, every other pixel identical), and an external site's images
are never the sweep's own."""
from __future__ import annotations

import numpy as np
import pytest

from data.builder import validate
from data.spec import DataSpec, SiteSpec
from data.synthetic import counterfactual_ids, draw_site, regenerate, source_of

SITES = (SiteSpec("marking", class_mix=(0.8, 0.2), marker_rate=(0.9,), intensity_shift=0.08),
         SiteSpec("plain", class_mix=(0.2, 0.8), noise=0.02))
DATA = DataSpec(source="synthetic", image_size=32, num_images=400, sites=SITES)


def test_the_class_mix_of_the_sites_makes_the_marker_predictive():
    source = source_of(DATA)
    drawn = [source(i) for i in range(400)]
    marked = np.array([d["marker_box"][0] >= 0 for d in drawn])
    labels = np.array([d["label"] for d in drawn])
    sites = np.array([source.site(i).name for i in range(400)])
    assert abs(np.mean(sites[labels == 0] == "marking") - 0.8) < 0.08
    assert abs(np.mean(marked[labels == 0]) - 0.72) < 0.08 and abs(np.mean(marked[labels == 1]) - 0.18) < 0.08
    assert not marked[sites == "plain"].any()


def test_a_counterfactual_copy_differs_only_where_the_marker_or_the_shift_was():
    source = source_of(DATA)
    ids = [source.image_id(i) for i in range(40)]
    boxes = np.stack([source(i)["marker_box"] for i in range(40)])
    no_marker = counterfactual_ids(DATA, ids, boxes, markers=False)
    assert no_marker == [i for i, b in zip(ids, boxes) if b[0] >= 0] and no_marker
    original, copy = regenerate(DATA, no_marker), regenerate(DATA, no_marker, markers=False)
    assert (copy["marker_boxes"] == -1).all()
    for k, box in enumerate(original["marker_boxes"]):
        outside = np.ones((32, 32), bool)
        outside[box[0]:box[2], box[1]:box[3]] = False
        assert (original["images"][k][outside] == copy["images"][k][outside]).all()
        assert (original["images"][k] != copy["images"][k]).any()
    no_shift = counterfactual_ids(DATA, ids, boxes, shift=False)
    assert set(no_shift) == {source.image_id(i) for i in range(40) if source.site(i).name == "marking"}
    unshifted = regenerate(DATA, no_shift, shift=False, markers=False)
    darker = regenerate(DATA, no_shift, markers=False)["images"].astype(int) - unshifted["images"].astype(int)
    assert 15 <= np.median(darker) <= 25  # 0.08 of 255, less where clipped
    assert (regenerate(DATA, ids)["images"] == np.stack([source(i)["image"] for i in range(40)])).all()


def test_an_external_site_draws_images_the_sweep_never_has():
    site = SiteSpec("elsewhere", marker_rate=(0.5,))
    drawn = draw_site(DATA, site, 60, "elsewhere")
    own = {source_of(DATA).image_id(i) for i in range(DATA.num_images)}
    assert not own & set(drawn["ids"]) and len(set(drawn["ids"])) == 60
    marked = drawn["marker_boxes"][:, 0] >= 0
    assert 0.25 < marked[drawn["labels"] == 0].mean() < 0.75 and 0.25 < marked[drawn["labels"] == 1].mean() < 0.75


def test_sites_are_checked_before_any_work():
    with pytest.raises(ValueError, match="marker_rate values must be probabilities"):
        validate(DATA.replace(sites=(SiteSpec("bad", marker_rate=(1.5,)),)))
    with pytest.raises(ValueError, match="per site"):
        validate(DATA.replace(marker_rate=(0.5,)))
    with pytest.raises(ValueError, match="needs sites"):
        validate(DataSpec(source="synthetic", split_strata="source_class"))


def test_explanations_get_the_generators_lung_fields_and_marker_free_copies(tmp_path):
    from data.builder import prepare
    from sweep.explain.ground_truth import build_sample

    spec = DATA.replace(num_images=60, cache_dir=str(tmp_path))
    test = prepare(spec).split("test")
    rows = np.arange(len(test))
    sample = build_sample(spec, test, rows)
    assert len(sample.lungs) == len(rows) and all(0.1 < m.mean() < 0.6 for m in sample.lungs)
    marked = [k for k in rows if test.marker_boxes[k][0] >= 0]
    assert sorted(sample.marker_free) == marked and marked
    for k in marked:
        y0, x0, y1, x1 = test.marker_boxes[k]
        outside = np.ones((32, 32), bool)
        outside[y0:y1, x0:x1] = False
        assert (sample.marker_free[k][outside] == sample.images[k][outside]).all()
