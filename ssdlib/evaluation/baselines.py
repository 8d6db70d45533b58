"""The post-hoc baselines as a suite: built from ``P.baselines``, tuned on validation data, scored per set.

Protocol (what every row of the results table means):

- **Methods** are those of ``ssdlib.detectors.registry``: each detector's file declares its params
  section (``baselines.<key>``), tuning grid, whether it fits and how it is built; nothing here
  names a method.
- **Fit** on plain features of the ID *train* set (``ssdlib.features.extract``); methods with
  nothing to estimate (MSP, MaxLogit, ODIN, Energy, GODIN) skip that pass. Input-space methods
  (ODIN, GODIN, Mahalanobis with eps > 0) then *score* through their own
  ``extract``, which preprocesses each test image; the others score cached plain features.
- **ReAct's percentile** is taken on ``baselines.react.source``: the train features (pytorch-ood)
  or ID validation data (ReAct's code, OpenOOD), which here is the ``tune_id_fraction`` hold-out
  of ID train that tuning scores on (``id_val``), held out of every detector's fit.
- **Tuning** (``baselines.tune``): each grid point is fitted on train minus a random
  ``tune_id_fraction`` hold-out and scored on that hold-out (ID validation) against a fresh
  draw of the synthetic set ``tune_on`` (OOD validation, seeded apart from every test set, so
  no test image is seen); the best AUROC wins, as OpenOOD's APS, and the detector is refitted on
  all of train. The network saw the held-out images in training; the detectors did not.
  GODIN needs no OOD data: with ``godin.epsilon: null`` its eps maximises the mean ID-hold-out
  score (Hsu et al. 2020, Sec. 3.3), whatever ``tune`` says.
- Every row's ``setting`` names the hyper-parameters used (as ``<key>_<name>=value``) and where
  they came from.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from ssdlib.data.synthetic import SyntheticImages
from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.registry import methods as registered
from ssdlib.evaluation.rows import ood_rows
from ssdlib.features import extract, subset
from ssdlib.metrics import accuracy, auroc
from ssdlib.params import BaselineParams

SYNTHETIC = ("blobs", "gaussian", "uniform")
VALIDATION_SEED_OFFSET = 1_000_003  # validation draws use seed + this; no test set is drawn with such a seed


def _method(key: str):
    known = registered()
    if key not in known:
        raise ValueError(f"unknown baseline {key!r}; registered: {', '.join(sorted(known))}")
    return known[key]


def build(method: str, params: BaselineParams, model: torch.nn.Module | None = None) -> Detector:
    """The detector ``method`` (a registered key) with the values of its section ``params.<method>``.

    ``model`` is the network being scored (ReAct and ViM read its classifier's last layer).
    """
    return _method(method).build(params.section(method), model)


class FeatureCache:
    """Named datasets under one model: plain features extracted once; input-space methods re-extract.

    ``sets`` maps names to Datasets (at least ``train``); subsets of a cached set share its features.
    """

    def __init__(self, model: torch.nn.Module, sets: dict[str, Dataset], device="cpu", batch_size: int = 256):
        if "train" not in sets:
            raise ValueError("FeatureCache needs the ID 'train' set (detectors are fitted on it)")
        self.model, self.sets, self.device, self.batch_size = model, dict(sets), device, batch_size
        self._plain: dict[str, FeatureSet] = {}
        self._subsets: dict[str, tuple[str, np.ndarray]] = {}

    def add_subset(self, name: str, parent: str, index: np.ndarray) -> None:
        """Register rows ``index`` of set ``parent`` as set ``name``."""
        self.sets[name] = Subset(self.sets[parent], np.asarray(index).tolist())
        self._subsets[name] = (parent, np.asarray(index))

    def plain(self, name: str) -> FeatureSet:
        """Features (and logits, labels) of set ``name`` by ``ssdlib.features.extract``."""
        if name not in self._plain:
            if name in self._subsets:
                parent, index = self._subsets[name]
                self._plain[name] = subset(self.plain(parent), index)
            else:
                self._plain[name] = extract(
                    self.model, self._dataset(name), self.device, batch_size=self.batch_size, desc=f"features of {name}"
                )
        return self._plain[name]

    def represent(self, detector: Detector, name: str) -> FeatureSet:
        """What ``detector`` scores for set ``name``: its own extract if it works on images, else plain features."""
        if detector.input_space:
            return detector.extract(self.model, self._dataset(name), self.device)
        return self.plain(name)

    def _dataset(self, name: str) -> Dataset:
        if name not in self.sets:
            raise KeyError(f"no set named {name!r} in this cache; it holds {sorted(self.sets)}")
        return self.sets[name]


@dataclass
class Scored:
    """One method's scores: ID test and each OOD set, the setting that produced them, the tuning
    grid's validation scores (if tuned) and result columns such as training_mode, arch, id_accuracy."""

    method: str
    setting: str
    id_scores: np.ndarray
    ood_scores: dict[str, np.ndarray]
    grid: pd.DataFrame | None = field(default=None, repr=False)
    info: dict = field(default_factory=dict)

    def rows(self, *, id_dataset: str, **info) -> list[dict]:
        """One result row per OOD set (``ssdlib.evaluation.results.row``); ``info`` adds to and overrides
        ``self.info``."""
        return ood_rows(
            self.method,
            self.id_scores,
            self.ood_scores,
            id_dataset=id_dataset,
            setting=self.setting,
            **{**self.info, **info},
        )


def validation_ood(kind: str, n: int, image_size: int, seed: int) -> Dataset:
    """A fresh draw of the synthetic set ``kind``, seeded apart from the test sets (seed + offset)."""
    if kind not in SYNTHETIC:
        raise ValueError(
            f"baselines.tune_on = {kind!r}: tuning must not see a test set; use a synthetic kind "
            f"drawn afresh for validation: one of {SYNTHETIC}"
        )
    return SyntheticImages(kind, n, image_size, seed=seed + VALIDATION_SEED_OFFSET)


def add_validation(cache: FeatureCache, params: BaselineParams, image_size: int, seed: int) -> None:
    """Register ``fit`` (train minus the hold-out), ``id_val`` (the hold-out) and ``ood_val`` in ``cache``."""
    if "id_val" in cache.sets:
        return
    n = len(cache.sets["train"])
    held = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(params.tune_id_fraction * n)))
    cache.add_subset("id_val", "train", np.sort(held[:cut]))
    cache.add_subset("fit", "train", np.sort(held[cut:]))
    cache.sets["ood_val"] = validation_ood(params.tune_on, params.tune_samples, image_size, seed)


def _grid(method: str, params: BaselineParams, tune_all: bool) -> list[dict]:
    """Grid points of ``method``'s section: every grid when ``tune_all``, else only what it must tune."""
    section = params.section(method)
    names = [n for n in section.grid if tune_all or n in section.must_tune()]
    return [dict(zip(names, point)) for point in itertools.product(*(section.grid[n] for n in names))]


def tune(method: str, params: BaselineParams, cache: FeatureCache) -> tuple[BaselineParams, pd.DataFrame]:
    """The params with ``method``'s grid point that scores best on validation data, and the grid's scores.

    ``cache`` must hold ``fit``, ``id_val`` and ``ood_val`` (see :func:`add_validation`). Grid
    points that do not apply (k above the bank size, ViM dims not below the feature size) are skipped.
    The grid's columns are named ``<method>_<hyper-parameter>``.
    """
    spec, section = _method(method), params.section(method)
    points = _grid(method, params, tune_all=True)
    records = []
    for point in points:
        candidate = section.model_copy(update=point)
        if not candidate.applies(cache.plain("fit")):
            continue
        detector = spec.build(candidate, cache.model).fit(_fit_data(method, cache, fit_set(candidate, tuning=True)))
        id_scores = detector.score(cache.represent(detector, "id_val"))
        columns = {f"{method}_{n}": v for n, v in point.items()}
        if candidate.tune_criterion == "mean ID score":
            records.append({**columns, "criterion": "mean ID score", "value": float(id_scores.mean())})
        else:
            ood_scores = detector.score(cache.represent(detector, "ood_val"))
            records.append(
                {**columns, "criterion": f"AUROC vs {params.tune_on}", "value": auroc(id_scores, ood_scores)}
            )
    if not records:
        raise ValueError(f"no grid point of {method} applies here: check baselines.{method}.grid")
    grid = pd.DataFrame(records)
    best = grid.iloc[int(grid["value"].to_numpy().argmax())]  # the first of equal bests
    return params.with_section(method, **{n: best[f"{method}_{n}"].item() for n in points[0]}), grid


def fit_set(section, *, tuning: bool = False) -> str:
    """The cached set a detector with params ``section`` is fitted on.

    Its ``fit_split`` ``train`` is all of ID train (``fit``, train minus the hold-out, while tuning);
    ``val`` is the ID validation hold-out ``id_val`` of :func:`add_validation`, in tuning and after.
    """
    split = section.fit_split()
    if split == "val":
        return "id_val"
    if split == "train":
        return "fit" if tuning else "train"
    raise ValueError(f"fit_split() must be 'train' or 'val', got {split!r}")


def _fit_data(method: str, cache: FeatureCache, name: str) -> FeatureSet:
    return cache.plain(name) if _method(method).fits else FeatureSet()


def setting(method: str, params: BaselineParams, tuned: tuple[str, ...] = ()) -> str:
    """``<method>_<name>=value`` of every hyper-parameter ``method`` scores with, and which were tuned on what."""
    section = params.section(method)
    values = {n: v for n, v in section.hyper_parameters().items() if n not in section.NOT_IN_SETTING}
    text = ", ".join(f"{method}_{n}={v}" for n, v in values.items()) or "no hyper-parameters"
    if tuned:
        source = (
            "mean score on an ID train hold-out"
            if section.tune_criterion == "mean ID score"
            else f"AUROC of an ID train hold-out vs a validation draw of {params.tune_on}"
        )
        text += f"; {', '.join(f'{method}_{n}' for n in tuned)} tuned by {source}"
    return text


def run(
    methods,
    params: BaselineParams,
    cache: FeatureCache,
    ood_sets,
    *,
    image_size: int,
    seed: int,
    names: dict[str, str] | None = None,
) -> list[Scored]:
    """Fit, tune (as ``params`` asks) and score each of ``methods`` on ID ``test`` and each of ``ood_sets``.

    ``names`` renames methods in the results (e.g. ``{"knn": "KNN+"}`` on SupCon features).
    """
    out = []
    for method in methods:
        p, grid, tuned = params, None, ()
        points = _grid(method, params, tune_all=params.tune)
        if points and points[0]:
            add_validation(cache, params, image_size, seed)
            p, grid = tune(method, params, cache)
            tuned = tuple(points[0])
        fit_on = fit_set(p.section(method))
        if fit_on == "id_val":
            add_validation(cache, params, image_size, seed)
        detector = build(method, p, cache.model).fit(_fit_data(method, cache, fit_on))
        scores = {name: detector.score(cache.represent(detector, name)) for name in ood_sets}
        out.append(
            Scored(
                (names or {}).get(method, _method(method).name),
                setting(method, p, tuned),
                detector.score(cache.represent(detector, "test")),
                scores,
                grid,
            )
        )
    return out


def id_accuracy(cache: FeatureCache) -> float | None:
    """Top-1 accuracy of the cached model on ID test (None if it has no classifier)."""
    test = cache.plain("test")
    return None if test.logits is None or test.labels is None else accuracy(test.logits, test.labels)
