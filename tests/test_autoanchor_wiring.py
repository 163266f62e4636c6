"""``make_experiment(anchors="auto")``: YOLOv5's AutoAnchor wired into a run, its decision
visible on the Experiment and saved in the run's meta."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from yolo_teach.anchors import kmeans_anchors, ratio_recall
from yolo_teach.checkpoint import load_checkpoint
from yolo_teach.detectors import official_anchors
from yolo_teach.experiment import (
    ANCHOR_CHOICES,
    AUTOANCHOR_T,
    AUTOANCHOR_THRESHOLD,
    check_anchors,
    letterboxed_wh,
    load_detector,
    make_experiment,
)
from yolo_teach.registry import AnchorSet, get_spec, register, unregister

SMALL = {"img_size": 64, "n_train": 8, "n_val": 2, "epochs": 1, "batch_size": 4,
         "progress": False, "val_every": 0}


@pytest.fixture
def misfit():
    """yolov3-nano with nine 500 x 500 px anchors (at 128 px): no shape of 64 px fits them."""
    spec = replace(get_spec("yolov3-nano"), name="autoanchor-misfit",
                   anchors=AnchorSet(sizes=((500, 500),) * 9,
                                     masks=((0, 1, 2), (3, 4, 5), (6, 7, 8)),
                                     reference_size=128))
    register(spec)
    yield spec
    unregister(spec.name)


def test_auto_is_a_choice_of_the_command_line_too():
    assert "auto" in ANCHOR_CHOICES  # cli.py builds --anchors from ANCHOR_CHOICES
    assert (AUTOANCHOR_T, AUTOANCHOR_THRESHOLD) == (4.0, 0.98)  # YOLOv5's hyp and check


def test_official_anchors_that_fit_are_kept_and_the_decision_is_recorded(tmp_path):
    exp = make_experiment("yolov5n", "shapes", anchors="auto", out_dir=tmp_path, **SMALL)
    official = official_anchors("yolov5n", 64)  # 640 px anchors x 0.1
    for got, want in zip(exp.detector.anchors, official):
        torch.testing.assert_close(got, want)
    wh = letterboxed_wh(exp.train_set, 64)
    bpr = ratio_recall(wh, torch.cat(official).numpy(), 4.0)
    assert bpr >= 0.98  # the shapes' boxes at 64 px are within 4x of some official anchor
    assert exp.autoanchor == {"anchor_t": 4.0, "threshold": 0.98, "recall_before": bpr,
                              "recall_after": bpr, "refit": False, "anchors": "official"}
    assert exp.trainer.meta["autoanchor"] == exp.autoanchor
    exp.trainer.fit()
    meta = load_checkpoint(tmp_path / "last.pt")["meta"]  # weights_only: plain data only
    assert meta["autoanchor"] == exp.autoanchor


def test_anchors_that_recall_too_few_boxes_are_refitted_with_kmeans(misfit, tmp_path):
    exp = make_experiment(misfit.name, "shapes", anchors="auto", out_dir=tmp_path, **SMALL)
    decision = exp.autoanchor
    wh = letterboxed_wh(exp.train_set, 64)
    assert decision["refit"] and decision["anchors"] == "kmeans"
    assert decision["recall_before"] == ratio_recall(wh, [[250.0, 250.0]])  # 500 px x 64/128
    assert decision["recall_before"] < 0.98 and decision["recall_after"] > decision["recall_before"]
    fitted = kmeans_anchors(wh, 9, seed=0)  # what autoanchor clusters, sorted by area
    assert decision["recall_after"] == ratio_recall(wh, fitted)
    np.testing.assert_allclose(torch.cat(exp.detector.anchors).numpy(), fitted, rtol=1e-6)
    assert exp.trainer.meta["autoanchor"] == decision
    exp.trainer.fit()
    detector, meta = load_detector(tmp_path / "last.pt")  # the fitted anchors travel with it
    assert meta["autoanchor"]["anchors"] == "kmeans"
    for a, b in zip(detector.anchors, exp.detector.anchors):
        torch.testing.assert_close(a, b)


def test_check_anchors_takes_yolov5s_threshold_and_ratio():
    exp = make_experiment("yolov5n", "shapes", anchors="official", **SMALL)
    assert exp.autoanchor is None and "autoanchor" not in exp.trainer.meta  # unchanged
    kept, decision = check_anchors("yolov5n", exp.train_set, 64)
    assert kept is None and not decision["refit"]
    # a ratio of 1.01 recalls almost nothing: the official anchors are re-fitted
    anchors, strict = check_anchors("yolov5n", exp.train_set, 64, anchor_t=1.01)
    assert strict["refit"] and anchors.shape == (9, 2)
    assert strict["recall_before"] < strict["recall_after"]


def test_a_model_without_anchors_has_nothing_to_check():
    exp = make_experiment("yolov1-nano", "shapes", anchors="auto", **{**SMALL, "img_size": 128})
    assert exp.autoanchor is None and "autoanchor" not in exp.trainer.meta
    assert check_anchors("yolov1-nano", exp.train_set, 128) == (None, None)
