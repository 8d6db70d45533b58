"""Metrics: agreement with scikit-learn and pytorch-ood, hand-computed ties, the two FPR95s."""

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from ssdlib import metrics

# Hand-computed case with ties: 18 ID at 1.0, 2 ID at 0.5; OOD 3 at 1.0, 4 at 0.5, 3 at 0.0.
TIED_ID = np.array([1.0] * 18 + [0.5] * 2)
TIED_OOD = np.array([1.0] * 3 + [0.5] * 4 + [0.0] * 3)


def random_scores(seed, n_id=500, n_ood=700):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.0, n_id), rng.normal(0.0, 1.5, n_ood)


def fpr_by_threshold_scan(pos, neg, level=0.95):
    """Independent FPR at TPR >= level: scan thresholds from high to low, accept score >= t."""
    for t in np.unique(np.concatenate([pos, neg]))[::-1]:
        if np.mean(pos >= t) >= level:
            return np.mean(neg >= t)
    raise AssertionError("unreachable")


@pytest.mark.parametrize("seed", range(5))
def test_agree_with_sklearn_on_random_scores(seed):
    id_s, ood_s = random_scores(seed)
    y = np.r_[np.ones_like(id_s), np.zeros_like(ood_s)]
    s = np.r_[id_s, ood_s]
    assert metrics.auroc(id_s, ood_s) == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert metrics.aupr_in(id_s, ood_s) == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert metrics.aupr_out(id_s, ood_s) == pytest.approx(average_precision_score(1 - y, -s), abs=1e-9)
    assert metrics.aupr_in_trapz(id_s, ood_s) == pytest.approx(auc(*precision_recall_curve(y, s)[1::-1]), abs=1e-9)
    assert metrics.aupr_out_trapz(id_s, ood_s) == pytest.approx(
        auc(*precision_recall_curve(1 - y, -s)[1::-1]), abs=1e-9
    )
    assert metrics.fpr_at_95_id_tpr(id_s, ood_s) == pytest.approx(fpr_by_threshold_scan(id_s, ood_s), abs=1e-9)
    assert metrics.fpr_at_95_ood_tpr(id_s, ood_s) == pytest.approx(fpr_by_threshold_scan(-ood_s, -id_s), abs=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_agree_with_pytorch_ood(seed):
    """pytorch-ood treats OOD as positive with larger = more OOD; swapping roles gives the classic FPR95."""
    from pytorch_ood.metrics import OODMetrics

    id_s, ood_s = random_scores(seed)
    m = OODMetrics()
    m.update(torch.tensor(-np.r_[id_s, ood_s]), torch.tensor(np.r_[np.zeros(len(id_s)), -np.ones(len(ood_s))]))
    ref = m.compute()
    assert metrics.auroc(id_s, ood_s) == pytest.approx(ref["AUROC"], abs=1e-6)
    assert metrics.fpr_at_95_ood_tpr(id_s, ood_s) == pytest.approx(ref["FPR95TPR"], abs=1e-6)

    swapped = OODMetrics()
    swapped.update(torch.tensor(np.r_[id_s, ood_s]), torch.tensor(np.r_[-np.ones(len(id_s)), np.zeros(len(ood_s))]))
    assert metrics.fpr_at_95_id_tpr(id_s, ood_s) == pytest.approx(swapped.compute()["FPR95TPR"], abs=1e-6)


def test_hand_computed_ties():
    # Classic: 95% of ID accepted only at t=0.5; OOD with score >= 0.5: 7 of 10.
    assert metrics.fpr_at_95_id_tpr(TIED_ID, TIED_OOD) == pytest.approx(0.7)
    # OpenOOD: catching 95% of OOD needs s <= 1.0, which rejects all 20 ID.
    assert metrics.fpr_at_95_ood_tpr(TIED_ID, TIED_OOD) == pytest.approx(1.0)
    # AUROC: (wins + half ties) / pairs = (126 + 6 + 0.5 * (54 + 8)) / 200.
    assert metrics.auroc(TIED_ID, TIED_OOD) == pytest.approx(163 / 200)
    # AP with ID positive: recall 0.9 at precision 18/21, then recall 1.0 at precision 20/27.
    assert metrics.aupr_in(TIED_ID, TIED_OOD) == pytest.approx(0.9 * 18 / 21 + 0.1 * 20 / 27)


def test_hand_computed_trapezoid_aupr():
    # Same curve as above, ID positive: (0, 1) -> (0.9, 18/21) -> (1.0, 20/27), joined by straight lines.
    expected = 0.9 * (1 + 18 / 21) / 2 + 0.1 * (18 / 21 + 20 / 27) / 2
    assert metrics.aupr_in_trapz(TIED_ID, TIED_OOD) == pytest.approx(expected)


def test_aupr_step_wise_and_trapezoid_on_ties():
    """Step-wise AUPR is scikit-learn's average precision, the trapezoid one auc(recall, precision)
    (OpenOOD v1.5, pytorch-ood); on tied scores the two are different numbers."""
    y = np.r_[np.ones_like(TIED_ID), np.zeros_like(TIED_OOD)]
    s = np.r_[TIED_ID, TIED_OOD]
    for labels, scores, step, trapz in (
        (y, s, metrics.aupr_in, metrics.aupr_in_trapz),
        (1 - y, -s, metrics.aupr_out, metrics.aupr_out_trapz),
    ):
        precision, recall, _ = precision_recall_curve(labels, scores)
        assert step(TIED_ID, TIED_OOD) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
        assert trapz(TIED_ID, TIED_OOD) == pytest.approx(auc(recall, precision), abs=1e-12)
        assert abs(trapz(TIED_ID, TIED_OOD) - step(TIED_ID, TIED_OOD)) > 0.05


@pytest.mark.parametrize("case", ["tied", "random"])
def test_trapezoid_aupr_agrees_with_pytorch_ood(case):
    """pytorch-ood's AUPR-IN (ID positive) and AUPR-OUT (OOD positive) are the trapezoid ones; it takes
    outlier scores (larger = more OOD, so our scores negated) and labels < 0 for OOD."""
    pytest.importorskip("pytorch_ood")
    from pytorch_ood.metrics import OODMetrics

    id_s, ood_s = (TIED_ID, TIED_OOD) if case == "tied" else random_scores(0)
    m = OODMetrics()
    m.update(torch.tensor(-np.r_[id_s, ood_s]), torch.tensor(np.r_[np.zeros(len(id_s)), -np.ones(len(ood_s))]))
    ref = m.compute()
    assert metrics.aupr_in_trapz(id_s, ood_s) == pytest.approx(ref["AUPR-IN"], abs=1e-9)
    assert metrics.aupr_out_trapz(id_s, ood_s) == pytest.approx(ref["AUPR-OUT"], abs=1e-9)
    if case == "tied":
        assert metrics.aupr_in(id_s, ood_s) != pytest.approx(ref["AUPR-IN"], abs=1e-3)
        assert metrics.aupr_out(id_s, ood_s) != pytest.approx(ref["AUPR-OUT"], abs=1e-3)


def test_conventions_differ_and_are_named():
    out = metrics.evaluate(TIED_ID, TIED_OOD)
    assert out["fpr95"] != out["fpr95_ood_tpr"]
    assert out["aupr_in"] != out["aupr_in_trapz"] and out["aupr_out"] != out["aupr_out_trapz"]
    assert set(out) == {
        "fpr95",
        "fpr95_ood_tpr",
        "auroc",
        "aupr_in",
        "aupr_out",
        "aupr_in_trapz",
        "aupr_out_trapz",
    }


def test_perfect_separation():
    out = metrics.evaluate([2.0, 3.0, 4.0], [0.0, 1.0])
    assert out["fpr95"] == 0 and out["fpr95_ood_tpr"] == 0
    assert out["auroc"] == out["aupr_in"] == out["aupr_out"] == 1
    assert out["aupr_in_trapz"] == out["aupr_out_trapz"] == 1


def test_rejects_nan_and_empty():
    with pytest.raises(ValueError, match="NaN"):
        metrics.auroc([1.0, np.nan], [0.0])
    with pytest.raises(ValueError, match="at least one"):
        metrics.auroc([], [0.0])


def test_accuracy_from_logits_and_labels():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert metrics.accuracy(logits, [0, 1, 1]) == pytest.approx(2 / 3)
    assert metrics.accuracy([0, 1, 1], [0, 1, 1]) == 1.0
