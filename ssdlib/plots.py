"""Figures for the notebooks. Every function returns a matplotlib Figure (the notebook shows and saves it)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import roc_curve

from ssdlib import progress
from ssdlib.detectors.base import l2_normalize
from ssdlib.metrics import auroc

if TYPE_CHECKING:
    from ssdlib.training.loop import History


def save(fig, out: str | Path, name: str, *, caption: str = "", dpi: int = 120) -> Path:
    """Write ``fig`` to ``<out>/<name>.png`` (tight bounding box), with ``caption`` in the file's PNG text
    (``Description``, which the report shows under it), close it and return the path."""
    path = Path(out) / f"{name}.png"
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Description": caption} if caption else None)
    plt.close(fig)
    return path


def show(fig, out: str | Path, name: str, *, caption: str, dpi: int = 120) -> None:
    """The one way the notebooks put out a figure: :func:`save` it, and in a notebook show the saved PNG
    inline, whatever matplotlib's backend (papermill runs under Agg keep their figures too)."""
    path = save(fig, out, name, caption=caption, dpi=dpi)
    if progress.kernel() is not None:
        from IPython.display import Image, display  # local: only a notebook gets here

        display(Image(filename=str(path), alt=caption))


def caption_of(path: str | Path) -> str:
    """The caption :func:`save` wrote into a figure's PNG ("" when it has none)."""
    from PIL import Image  # local: only the report reads captions

    with Image.open(path) as image:
        return image.text.get("Description", "") if hasattr(image, "text") else ""


def _setting_values(setting: str) -> dict[str, float]:
    """``"k=5,copies=10"`` -> ``{"k": 5.0, "copies": 10.0}`` (the ``setting`` column of result rows)."""
    return {key: float(value) for key, value in (part.split("=") for part in setting.split(","))}


def score_histograms(id_scores, ood_scores: dict[str, np.ndarray], *, title: str = "", bins: int = 40):
    """One panel per OOD set: densities of ID-test vs OOD scores (higher = more ID)."""
    cols = min(4, len(ood_scores))
    rows = math.ceil(len(ood_scores) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (name, scores) in zip(axes.flat, ood_scores.items()):
        edges = np.histogram_bin_edges(np.concatenate([id_scores, scores]), bins=bins)
        ax.hist(id_scores, edges, density=True, alpha=0.55, label="ID test")
        ax.hist(scores, edges, density=True, alpha=0.55, label=name)
        ax.set_title(f"{name} (AUROC {auroc(id_scores, scores):.3f})", fontsize=9)
        ax.set_xlabel("score", fontsize=8)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(ood_scores) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def roc_curves(id_scores, ood_scores: dict[str, np.ndarray], *, title: str = ""):
    """ROC curve of each OOD set, ID as the positive class (TPR = share of ID accepted)."""
    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for name, scores in ood_scores.items():
        labels = np.r_[np.ones(len(id_scores)), np.zeros(len(scores))]
        fpr, tpr, _ = roc_curve(labels, np.r_[id_scores, scores])
        ax.plot(fpr, tpr, label=f"{name} ({auroc(id_scores, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.axhline(0.95, color="grey", lw=0.6, ls="--")
    ax.set(xlabel="FPR (OOD accepted as ID)", ylabel="TPR (ID accepted)", title=title)
    ax.legend(fontsize=7, title="OOD (AUROC)", title_fontsize=7)
    fig.tight_layout()
    return fig


def cluster_sweep(table: pd.DataFrame, metric: str = "auroc"):
    """``metric`` against the number of k-means clusters, one panel per method, a line per OOD set.

    ``table``: result rows whose ``setting`` is ``"clusters=C"`` (``ssdlib.evaluation.rows.sweep_clusters``).
    """
    table = table.assign(clusters=[_setting_values(s)["clusters"] for s in table["setting"]])
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.4), squeeze=False, sharey=True)
    for ax, method in zip(axes.flat, methods):
        for name, part in table[table["method"] == method].groupby("ood_dataset", sort=False):
            part = part.sort_values("clusters")
            ax.plot(part["clusters"], part[metric], "o-", label=name)
        ax.set_xscale("log", base=2)
        ticks = sorted(table["clusters"].unique())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set(xlabel="clusters", ylabel=metric.upper(), title=method)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def few_shot_grid(table: pd.DataFrame, baseline: pd.DataFrame, metric: str = "auroc"):
    """SSD_k's ``metric`` against k (a line per number of copies), one panel per OOD set; dashed: plain SSD.

    ``table``: SSD_k rows with ``setting`` ``"k=K,copies=C"``; ``baseline``: one plain-SSD row per OOD set.
    """
    values = pd.DataFrame([_setting_values(s) for s in table["setting"]], index=table.index)
    table = table.join(values)
    sets = list(dict.fromkeys(table["ood_dataset"]))
    cols = min(4, len(sets))
    rows = math.ceil(len(sets) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.7 * rows), squeeze=False)
    for ax, name in zip(axes.flat, sets):
        part = table[table["ood_dataset"] == name]
        for copies, line in part.groupby("copies"):
            line = line.sort_values("k")
            ax.plot(line["k"], line[metric], "o-", label=f"copies={copies:g}")
        ax.axhline(baseline.loc[baseline["ood_dataset"] == name, metric].iloc[0], color="k", ls="--", lw=1, label="SSD")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(sorted(part["k"].unique()))
        ax.set_xlabel("k (known outliers per class)", fontsize=8)
        ax.set_ylabel(metric.upper(), fontsize=8)
    for ax in list(axes.flat)[len(sets) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def method_histograms(scored, *, bins: int = 40, cols: int = 4):
    """A panel per method: its ID-test scores (filled) against each OOD set (lines); x is each
    method's own score scale. ``scored``: ``ssdlib.evaluation.baselines.Scored`` objects."""
    rows = math.ceil(len(scored) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows), squeeze=False)
    for ax, s in zip(axes.flat, scored):
        values = np.concatenate([s.id_scores, *s.ood_scores.values()])
        low, high = np.percentile(values, [0.5, 99.5])  # a few extreme scores would squash the rest
        edges = np.linspace(low, high, bins + 1) if high > low else bins
        id_density, *_ = ax.hist(np.clip(s.id_scores, low, high), edges, density=True, color="0.75", label="ID test")
        for name, scores in s.ood_scores.items():
            ax.hist(np.clip(scores, low, high), edges, density=True, histtype="step", lw=1.1, label=name)
        ax.set_ylim(0, 3 * id_density.max())  # OOD sets piled into one bin would flatten the ID histogram
        ax.set_title(s.method, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    for ax in list(axes.flat)[len(scored) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6, ncol=2)
    fig.supxlabel(
        "score (higher = more in-distribution; clipped to its 0.5-99.5 % range; y up to 3x the ID peak)", fontsize=8
    )
    fig.tight_layout()
    return fig


def below_chance_histograms(scored, pairs: pd.DataFrame, *, bins: int = 40, cols: int = 4):
    """A panel per (method, OOD set) pair of ``pairs`` (``ssdlib.evaluation.comparison.below_chance``): the method's
    ID-test scores (filled) against that set's (line), so that a set scored above the ID images shows
    as a line to the right of the grey mass. With no such pair, one empty panel says so."""
    by_method = {s.method: s for s in scored}
    rows = max(1, math.ceil(len(pairs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows), squeeze=False)
    for ax, (_, pair) in zip(axes.flat, pairs.iterrows()):
        s = by_method[pair["method"]]
        ood = s.ood_scores[pair["ood_dataset"]]
        low, high = np.percentile(np.concatenate([s.id_scores, ood]), [0.5, 99.5])
        edges = np.linspace(low, high, bins + 1) if high > low else bins
        ax.hist(np.clip(s.id_scores, low, high), edges, density=True, color="0.75", label="ID test")
        ax.hist(
            np.clip(ood, low, high), edges, density=True, histtype="step", lw=1.3, color="C3", label=pair["ood_dataset"]
        )
        ax.set_title(f"{pair['method']} on {pair['ood_dataset']}: AUROC {pair['auroc']:.2f}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    if pairs.empty:
        axes.flat[0].text(0.5, 0.5, "no method scores an OOD set below chance", ha="center", va="center")
    fig.supxlabel("score (higher = more in-distribution)", fontsize=8)
    fig.tight_layout()
    return fig


def trusted_ood_grid(images: dict[str, list], picks: dict[str, pd.DataFrame]):
    """SSOD Fig. 4 for every method: a row per method with the OOD images it scores most in-distribution,
    each titled with its set, score and ID percentile (share of ID test scored lower).

    ``images[method]``: [3, H, W] tensors in [0, 1]; ``picks[method]``: the matching rows of
    ``ssdlib.evaluation.comparison.most_trusted``.
    """
    methods = list(images)
    cols = max(len(v) for v in images.values())
    fig, axes = plt.subplots(len(methods), cols, figsize=(1.35 * cols + 1.2, 1.55 * len(methods)), squeeze=False)
    for r, method in enumerate(methods):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(images[method]):
                ax.axis("off")
                continue
            pick = picks[method].iloc[c]
            ax.imshow(images[method][c].permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(f"{pick['ood_dataset']}\n{pick['score']:.3g} | ID {pick['id_percentile']:.0f}%", fontsize=6)
        axes[r, 0].set_ylabel(method, fontsize=8, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


def dataset_grid(sets: dict[str, tuple], per_set: int = 10):
    """One row of evenly spaced samples per dataset, headed by what the set stands in for.

    ``sets``: label -> (dataset yielding ([3, H, W] in [0, 1], label), one-line description), as
    ``DatasetBundle.catalogue()`` gives. Images are captioned with their class names when the set
    has them (``class_names``, or torchvision's ``classes``).
    """
    fig, axes = plt.subplots(len(sets), per_set, figsize=(1.05 * per_set, 1.55 * len(sets)), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.45 / (1.55 * len(sets)), bottom=0.01, wspace=0.06, hspace=0.75)
    for row, (label, (dataset, about)) in zip(axes, sets.items()):
        row[0].text(0, 1.42, f"{label}: {about}", transform=row[0].transAxes, fontsize=8, ha="left", va="bottom")
        names = getattr(dataset, "class_names", None) or getattr(dataset, "classes", None)
        picks = np.linspace(0, len(dataset) - 1, min(per_set, len(dataset))).round().astype(int)
        for ax in row:
            ax.axis("off")
        for ax, index in zip(row, picks):
            image, target = dataset[int(index)]
            ax.imshow(np.asarray(image).transpose(1, 2, 0).clip(0, 1), interpolation="nearest")
            if names:
                ax.set_title(names[target], fontsize=6)
    return fig


# -- training (notebook 01) ------------------------------------------------------------------


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
    from sklearn.decomposition import PCA  # local: slow to import, only the 2-D projection needs it
    from sklearn.manifold import TSNE  # local: slow to import, only the 2-D projection needs it

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


# -- SSOD (notebook 04) ----------------------------------------------------------------------


def ssod_training_curves(history, *, batch_size: int, warmup_epochs: int = 0, title: str = ""):
    """SSOD's per-batch log: CE, CE_ood, and the ID / OOD locations the sampler picked per image.
    ``history``: ``ssdlib.ssod.train.SSODHistory``; a dotted line marks the end of the CE-only warm-up."""
    steps = history.steps()
    x = np.arange(1, len(steps) + 1) / (len(steps) / max(len(history.epoch), 1))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    axes[0].plot(x, steps["ce"], lw=0.7)
    axes[0].set(title="classification CE", ylabel="loss")
    axes[1].plot(x, steps["ce_ood"], lw=0.7, color="C1")
    axes[1].set(title="OOD-head CE (balanced; off in warm-up)", ylabel="loss")
    axes[2].plot(x, steps["n_id"] / batch_size, lw=0.7, color="C2", label="ID")
    axes[2].plot(x, steps["n_ood"] / batch_size, lw=0.7, color="C3", label="OOD")
    axes[2].set(title=f"sampled locations per image (of {history.locations})", ylabel="locations")
    axes[2].legend(fontsize=8)
    for ax in axes:
        ax.set_xlabel("epoch")
        if warmup_epochs:
            ax.axvline(warmup_epochs, color="k", ls=":", lw=1)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _cell_overlay(ax, mask: np.ndarray, size: int, colour) -> None:
    """Shade the image pixels under each True map cell (nearest upsampling of the [h, w] mask)."""
    rgba = np.zeros((*mask.shape, 4))
    rgba[mask] = (*colour, 0.45)
    ax.imshow(rgba, extent=(-0.5, size - 0.5, size - 0.5, -0.5), interpolation="nearest")


def ssod_locality(images, maps: dict, *, per_row: int = 6):
    """SSOD Fig. 3 for each model in ``maps`` (name -> ``ssdlib.ssod.analysis.Locality`` of ``images``):
    a row with the locations classified correctly with > 40 % confidence (blue), and a row with the
    sampler's ID (green) and OOD (red) picks. ``images``: [N, 3, H, W] in [0, 1]."""
    n = min(per_row, len(images))
    fig, axes = plt.subplots(2 * len(maps), n, figsize=(1.5 * n, 1.6 * 2 * len(maps)), squeeze=False)
    size = images.shape[-1]
    for m, (name, loc) in enumerate(maps.items()):
        for i in range(n):
            for row, overlays in (
                (2 * m, [(loc.correct[i], (0.1, 0.3, 1.0))]),
                (2 * m + 1, [(loc.picks[i] == 1, (0.1, 0.8, 0.1)), (loc.picks[i] == 0, (1.0, 0.1, 0.1))]),
            ):
                ax = axes[row, i]
                ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy())
                for mask, colour in overlays:
                    _cell_overlay(ax, mask, size, colour)
                ax.set_xticks([])
                ax.set_yticks([])
        axes[2 * m, 0].set_ylabel(f"{name}\n> 40 % correct", fontsize=7)
        axes[2 * m + 1, 0].set_ylabel(f"{name}\nsampler ID / OOD", fontsize=7)
    fig.tight_layout()
    return fig


def id_ood_embeddings(panels: dict, *, ood_name: str = "OOD"):
    """SSOD Fig. 2: 2-D embeddings of ID (green) and OOD (red) features, one panel per model.
    ``panels``: title -> (points [N, 2], is_id [N] bool)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (title, (points, is_id)) in zip(axes[0], panels.items()):
        ax.scatter(*points[is_id].T, s=5, color="tab:green", label="ID test")
        ax.scatter(*points[~is_id].T, s=5, color="tab:red", label=ood_name)
        ax.set(title=title, xticks=[], yticks=[])
    axes[0, 0].legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def ssod_ablation(table: pd.DataFrame, by: str, *, metrics=("fpr95", "auroc", "id_accuracy"), hue: str | None = None):
    """One panel per metric against the ablated setting ``by`` (a column of ``table``): lines when
    ``by`` is numeric (alpha, Table 4), grouped bars otherwise (balance, backbone: Tables 5, 6),
    one series per value of ``hue`` (e.g. the method: vanilla MSP vs SSOD)."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3), squeeze=False)
    groups = table.groupby(hue, sort=False) if hue else [("", table)]
    numeric = pd.api.types.is_numeric_dtype(table[by])
    categories = list(dict.fromkeys(table[by]))
    width = 0.8 / max(len(groups) if hue else 1, 1)
    for ax, metric in zip(axes[0], metrics):
        for j, (name, part) in enumerate(groups):
            if numeric:
                part = part.sort_values(by)
                ax.plot(part[by], part[metric], "o-", label=name or None)
            else:
                pos = [categories.index(v) + (j - (len(groups) - 1) / 2) * width for v in part[by]]
                ax.bar(pos, part[metric], width=width, label=name or None)
        if not numeric:
            ax.set_xticks(range(len(categories)), categories, rotation=20, fontsize=7)
        ax.set(xlabel=by, title=metric.upper().replace("_", " "))
    if hue:
        axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig
