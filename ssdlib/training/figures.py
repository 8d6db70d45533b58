"""Figures of a training run (notebook 01). Every function returns a matplotlib Figure."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from ssdlib.training.loop import History


def training_curves(history: History, *, title: str = ""):
    """Loss per step (and its per-epoch mean), lr and momentum per step, and the monitor accuracies."""
    fig, (ax_loss, ax_lr, ax_acc) = plt.subplots(1, 3, figsize=(13, 3.2))
    steps_per_epoch = len(history.step_loss) / max(len(history.epoch), 1)
    ax_loss.plot(
        np.arange(1, len(history.step_loss) + 1) / steps_per_epoch,
        history.step_loss,
        lw=0.6,
        alpha=0.5,
        label="per step",
    )
    ax_loss.plot(history.epoch, history.loss, "o-", ms=3, label="epoch mean")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_loss.legend(fontsize=8)

    ax_lr.plot(np.arange(len(history.step_lr)) / steps_per_epoch, history.step_lr, color="C2")
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="warm-up, then cosine")
    ax_m = ax_lr.twinx()
    ax_m.plot(history.epoch, history.momentum, "--", color="C3", label="momentum")
    ax_m.set_ylim(0, 1)
    ax_m.set_ylabel("momentum")
    ax_m.legend(fontsize=8, loc="lower left")

    for name, values in (("kNN (k=20, cosine)", history.knn_accuracy), ("test top-1", history.test_accuracy)):
        shown = [(e, v) for e, v in zip(history.epoch, values) if not math.isnan(v)]
        if shown:
            ax_acc.plot(*zip(*shown), "o-", ms=3, label=name)
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="monitor", ylim=(0, 1))
    ax_acc.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def project_2d(features: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """2-D coordinates of features [N, D]: PCA, or t-SNE (van der Maaten & Hinton 2008) on the
    L2-normalised features (SSD's geometry) after PCA to at most 50 dimensions."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    from ssdlib.detectors.base import l2_normalize

    x = l2_normalize(features)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x)
    if method != "tsne":
        raise ValueError(f"unknown method {method!r}; use 'tsne' or 'pca'")
    x = PCA(min(50, *x.shape), random_state=seed).fit_transform(x)
    return TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)


def embedding_2d(points: np.ndarray, labels: np.ndarray, class_names: list[str] | None = None, *, title: str = ""):
    """A 2-D embedding (t-SNE or PCA coordinates [N, 2]) coloured by class."""
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    classes = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, c in enumerate(classes):
        mask = labels == c
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        ax.scatter(points[mask, 0], points[mask, 1], s=6, color=cmap(i % cmap.N), label=name)
    ax.set(xticks=[], yticks=[], title=title)
    ax.legend(fontsize=7, markerscale=2, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.tight_layout()
    return fig
