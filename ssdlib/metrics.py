"""OOD metrics, one module for the whole package.

Convention everywhere in ssdlib: a *higher score means more in-distribution*. Detectors that
naturally produce distances return their negation.

Two FPR95s exist in the literature and they are different numbers:

* :func:`fpr_at_95_id_tpr` is the classic one (ODIN, Energy, KNN, SSD, SSOD): the share of OOD
  samples accepted as ID at the threshold that accepts 95% of ID samples (ID is positive).
* :func:`fpr_at_95_ood_tpr` is OpenOOD v1.5 / pytorch-ood's: the share of ID samples rejected
  at the threshold that catches 95% of OOD samples (OOD is positive).

Both are read off scikit-learn's ROC curve, so tied scores are handled the way scikit-learn
handles them: all samples sharing a score cross the threshold together.

Two AUPRs exist as well, for either positive class:

* :func:`aupr_in` / :func:`aupr_out` are average precision, the step-wise sum of scikit-learn's
  :func:`~sklearn.metrics.average_precision_score` (SSD's ``utils.get_pr_sklearn``).
* :func:`aupr_in_trapz` / :func:`aupr_out_trapz` integrate the same precision-recall curve with the
  trapezoid rule, ``sklearn.metrics.auc(recall, precision)`` (OpenOOD v1.5, pytorch-ood). On tied
  scores the trapezoid interpolates between the curve's points and the two can differ by ~0.2.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

TPR_LEVEL = 0.95


def _check(id_scores, ood_scores) -> tuple[np.ndarray, np.ndarray]:
    id_scores = np.asarray(id_scores, dtype=np.float64).ravel()
    ood_scores = np.asarray(ood_scores, dtype=np.float64).ravel()
    if id_scores.size == 0 or ood_scores.size == 0:
        raise ValueError("metrics need at least one ID and one OOD score")
    for name, s in (("ID", id_scores), ("OOD", ood_scores)):
        if not np.all(np.isfinite(s)):
            raise ValueError(f"{name} scores contain NaN or inf: check the detector's fit and inputs")
    return id_scores, ood_scores


def _labels_scores(id_scores, ood_scores, positive: str):
    """Concatenate scores with labels for the chosen positive class (scores oriented to it)."""
    s = np.concatenate([id_scores, ood_scores])
    is_id = np.concatenate([np.ones_like(id_scores), np.zeros_like(ood_scores)])
    if positive == "id":
        return is_id, s
    return 1.0 - is_id, -s


def _fpr_at_tpr(labels, scores, level: float) -> float:
    """FPR at the first ROC point whose TPR reaches ``level`` (scikit-learn's curve, ties grouped)."""
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return float(fpr[np.searchsorted(tpr, level - 1e-12, side="left")])


def fpr_at_95_id_tpr(id_scores, ood_scores) -> float:
    """Classic FPR95: share of OOD accepted when 95% of ID is accepted (SSD, SSOD, KNN, ODIN)."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return _fpr_at_tpr(*_labels_scores(id_scores, ood_scores, "id"), TPR_LEVEL)


def fpr_at_95_ood_tpr(id_scores, ood_scores) -> float:
    """OpenOOD / pytorch-ood FPR95: share of ID rejected when 95% of OOD is caught."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return _fpr_at_tpr(*_labels_scores(id_scores, ood_scores, "ood"), TPR_LEVEL)


def auroc(id_scores, ood_scores) -> float:
    """Area under the ROC curve; the same whichever class is positive."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return float(roc_auc_score(*_labels_scores(id_scores, ood_scores, "id")))


def aupr_in(id_scores, ood_scores) -> float:
    """Average precision (step-wise, scikit-learn) with ID as the positive class."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return float(average_precision_score(*_labels_scores(id_scores, ood_scores, "id")))


def aupr_out(id_scores, ood_scores) -> float:
    """Average precision with OOD as the positive class: what SSD reports as "AUPR"."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return float(average_precision_score(*_labels_scores(id_scores, ood_scores, "ood")))


def _aupr_trapz(labels, scores) -> float:
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(auc(recall, precision))


def aupr_in_trapz(id_scores, ood_scores) -> float:
    """Trapezoid-rule area under the precision-recall curve, ID positive (OpenOOD / pytorch-ood AUPR-In)."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return _aupr_trapz(*_labels_scores(id_scores, ood_scores, "id"))


def aupr_out_trapz(id_scores, ood_scores) -> float:
    """Trapezoid-rule area under the precision-recall curve, OOD positive (OpenOOD / pytorch-ood AUPR-Out)."""
    id_scores, ood_scores = _check(id_scores, ood_scores)
    return _aupr_trapz(*_labels_scores(id_scores, ood_scores, "ood"))


def accuracy(logits_or_predictions, labels) -> float:
    """Top-1 accuracy from logits [N, M] or predicted labels [N]."""
    pred = np.asarray(logits_or_predictions)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    labels = np.asarray(labels)
    if pred.shape != labels.shape:
        raise ValueError(f"predictions {pred.shape} and labels {labels.shape} differ in shape")
    return float((pred == labels).mean())


def evaluate(id_scores, ood_scores) -> dict[str, float]:
    """Every OOD metric of the package for one ID/OOD pair, as fractions in [0, 1]."""
    return {
        "fpr95": fpr_at_95_id_tpr(id_scores, ood_scores),
        "fpr95_ood_tpr": fpr_at_95_ood_tpr(id_scores, ood_scores),
        "auroc": auroc(id_scores, ood_scores),
        "aupr_in": aupr_in(id_scores, ood_scores),
        "aupr_out": aupr_out(id_scores, ood_scores),
        "aupr_in_trapz": aupr_in_trapz(id_scores, ood_scores),
        "aupr_out_trapz": aupr_out_trapz(id_scores, ood_scores),
    }
