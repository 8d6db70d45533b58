"""The post-hoc baselines as a suite: built from ``P.baselines``, tuned on validation data, scored per set.

Protocol (what every row of the results table means):

- **Fit** on plain features of the ID *train* set (``ssdlib.features.extract``); methods with
  nothing to estimate (MSP, MaxLogit, ODIN, Energy, GODIN) skip that pass. Input-space methods (ODIN, GODIN, Mahalanobis with eps > 0) then *score* through their own
  ``extract``, which preprocesses each test image; the others score cached plain features.
- **ReAct's percentile** is taken on ``baselines.react_source``: the train features (pytorch-ood)
  or the bundle's ID validation split (ReAct's code, OpenOOD).
- **Tuning** (``baselines.tune``): each grid point is fitted on train minus a random
  ``tune_id_fraction`` hold-out and scored on that hold-out (ID validation) against a fresh
  draw of the synthetic set ``tune_on`` (OOD validation, seeded apart from every test set, so
  no test image is seen); the best AUROC wins, as OpenOOD's APS, and the detector is refitted on
  all of train. The network saw the held-out images in training; the detectors did not.
  GODIN needs no OOD data: with ``godin_epsilon: null`` its eps maximises the mean ID-hold-out
  score (Hsu et al. 2020, Sec. 3.3), whatever ``tune`` says.
- Every row's ``setting`` names the hyper-parameters used and where they came from.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Subset

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.energy import Energy
from ssdlib.detectors.godin import GODIN
from ssdlib.detectors.knn import KNN
from ssdlib.detectors.mahalanobis import Mahalanobis
from ssdlib.detectors.maxlogit import MaxLogit
from ssdlib.detectors.msp import MSP
from ssdlib.detectors.odin import ODIN
from ssdlib.detectors.react import ReAct
from ssdlib.detectors.ssd import ood_rows
from ssdlib.detectors.vim import ViM
from ssdlib.features import extract
from ssdlib.metrics import accuracy, auroc
from ssdlib.params import BaselineParams

NAMES = {"msp": "MSP", "maxlogit": "MaxLogit", "odin": "ODIN", "mahalanobis": "Mahalanobis", "energy": "Energy",
         "knn": "KNN", "react": "ReAct", "vim": "ViM", "godin": "GODIN"}
# The hyper-parameters each method reads from P.baselines (all of them go into the row's setting).
USES = {"msp": (), "maxlogit": (), "odin": ("odin_temperature", "odin_epsilon"),
        "mahalanobis": ("mahalanobis_epsilon",), "energy": ("energy_temperature",), "knn": ("knn_k",),
        "react": ("react_percentile", "react_source"), "vim": ("vim_dim",), "godin": ("godin_epsilon",)}
# The ones a grid exists for (P.baselines.grids has a list of the same name).
TUNABLE = {"odin": ("odin_temperature", "odin_epsilon"), "mahalanobis": ("mahalanobis_epsilon",),
           "knn": ("knn_k",), "react": ("react_percentile",), "vim": ("vim_dim",), "godin": ("godin_epsilon",)}
NOTHING_TO_FIT = {"msp", "maxlogit", "odin", "energy", "godin"}  # fitted on an empty FeatureSet: no train pass
SYNTHETIC = ("blobs", "gaussian", "uniform")
VALIDATION_SEED_OFFSET = 1_000_003  # validation draws use seed + this; no test set is drawn with such a seed


def linear_head(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Weight [C, D] and bias [C] of the model's last layer ``model.head`` (ReAct and ViM need them)."""
    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear) or head.bias is None:
        raise TypeError(f"{type(model).__name__} has no linear classifier .head with a bias: ReAct and ViM need "
                        "the last layer W z + b (use the SupCE classifier, ssdlib.experiment.classifier_for)")
    return head.weight.detach().cpu().double().numpy(), head.bias.detach().cpu().double().numpy()


def build(method: str, params: BaselineParams, model: torch.nn.Module | None = None) -> Detector:
    """The detector ``method`` (a key of :data:`NAMES`) with the values in ``params``.

    ReAct and ViM read the classifier's last layer from ``model``. GODIN's eps must be a number
    here (``tune`` chooses it when the params leave it null).
    """
    p = params
    if method in ("react", "vim"):
        if model is None:
            raise ValueError(f"{method} needs the classifier (model=...) for its last layer")
        weight, bias = linear_head(model)
        return ReAct(weight, bias, p.react_percentile) if method == "react" else ViM(weight, bias, p.vim_dim)
    if method == "godin" and p.godin_epsilon is None:
        raise ValueError("godin_epsilon is null (choose on ID validation data): call tune('godin', ...) first")
    makers = {
        "msp": MSP, "maxlogit": MaxLogit,
        "odin": lambda: ODIN(p.odin_temperature, p.odin_epsilon),
        "mahalanobis": lambda: Mahalanobis(p.mahalanobis_epsilon),
        "energy": lambda: Energy(p.energy_temperature),
        "knn": lambda: KNN(p.knn_k, backend=p.knn_backend),
        "godin": lambda: GODIN(p.godin_epsilon),
    }
    if method not in makers:
        raise ValueError(f"unknown baseline {method!r}; choose from {sorted(NAMES)}")
    return makers[method]()


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
                from ssdlib.features import subset

                parent, index = self._subsets[name]
                self._plain[name] = subset(self.plain(parent), index)
            else:
                self._plain[name] = extract(self.model, self._dataset(name), self.device,
                                            batch_size=self.batch_size, desc=f"features of {name}")
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
        """One result row per OOD set (``ssdlib.results.row``); ``info`` adds to and overrides ``self.info``."""
        return ood_rows(self.method, self.id_scores, self.ood_scores, id_dataset=id_dataset,
                        setting=self.setting, **{**self.info, **info})


def validation_ood(kind: str, n: int, image_size: int, seed: int) -> Dataset:
    """A fresh draw of the synthetic set ``kind``, seeded apart from the test sets (seed + offset)."""
    from ssdlib.data.synthetic import SyntheticImages

    if kind not in SYNTHETIC:
        raise ValueError(f"baselines.tune_on = {kind!r}: tuning must not see a test set; use a synthetic kind "
                         f"drawn afresh for validation: one of {SYNTHETIC}")
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
    """Grid points for ``method``; GODIN's eps is searched whenever it is null."""
    names = [n for n in TUNABLE.get(method, ())
             if tune_all or (method == "godin" and params.godin_epsilon is None)]
    values = [getattr(params.grids, n) for n in names]
    return [dict(zip(names, point)) for point in itertools.product(*values)]


def tune(method: str, params: BaselineParams, cache: FeatureCache) -> tuple[BaselineParams, pd.DataFrame]:
    """The params with ``method``'s grid point that scores best on validation data, and the grid's scores.

    ``cache`` must hold ``fit``, ``id_val`` and ``ood_val`` (see :func:`add_validation`). Grid
    points that do not apply (k above the bank size, ViM dims not below the feature size) are skipped.
    """
    points = _grid(method, params, tune_all=True)
    records = []
    for point in points:
        p = params.model_copy(update=point)
        if (method == "vim" and p.vim_dim >= cache.plain("fit").features.shape[1]) or \
                (method == "knn" and p.knn_k > len(cache.plain("fit"))):
            continue
        detector = build(method, p, cache.model).fit(_fit_data(method, cache, "fit"))
        id_scores = detector.score(cache.represent(detector, "id_val"))
        if method == "godin":
            records.append({**point, "criterion": "mean ID score", "value": float(id_scores.mean())})
        else:
            ood_scores = detector.score(cache.represent(detector, "ood_val"))
            records.append({**point, "criterion": f"AUROC vs {params.tune_on}", "value": auroc(id_scores, ood_scores)})
    if not records:
        raise ValueError(f"no grid point of {method} applies here: check baselines.grids")
    grid = pd.DataFrame(records)
    best = grid.iloc[int(grid["value"].to_numpy().argmax())]  # the first of equal bests
    chosen = {n: best[n].item() for n in points[0]}
    return BaselineParams.model_validate({**params.model_dump(), **chosen}), grid


def _fit_data(method: str, cache: FeatureCache, name: str) -> FeatureSet:
    return FeatureSet() if method in NOTHING_TO_FIT else cache.plain(name)


def setting(method: str, params: BaselineParams, tuned: tuple[str, ...] = ()) -> str:
    """``name=value`` of every hyper-parameter ``method`` uses, and which were tuned on what."""
    text = ", ".join(f"{n}={getattr(params, n)}" for n in USES[method]) or "no hyper-parameters"
    if tuned:
        source = "mean score on an ID train hold-out" if method == "godin" else \
            f"AUROC of an ID train hold-out vs a validation draw of {params.tune_on}"
        text += f"; {', '.join(tuned)} tuned by {source}"
    return text


def run(methods, params: BaselineParams, cache: FeatureCache, ood_sets, *, image_size: int, seed: int,
        names: dict[str, str] | None = None) -> list[Scored]:
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
        fit_on = "val" if method == "react" and p.react_source == "val" else "train"
        if fit_on not in cache.sets:
            raise ValueError("baselines.react_source = val needs an ID validation split ('val'), which this data "
                             "has not: set react_source: train")
        detector = build(method, p, cache.model).fit(_fit_data(method, cache, fit_on))
        scores = {name: detector.score(cache.represent(detector, name)) for name in ood_sets}
        out.append(Scored((names or {}).get(method, NAMES[method]), setting(method, p, tuned),
                          detector.score(cache.represent(detector, "test")), scores, grid))
    return out


def id_accuracy(cache: FeatureCache) -> float | None:
    """Top-1 accuracy of the cached model on ID test (None if it has no classifier)."""
    test = cache.plain("test")
    return None if test.logits is None or test.labels is None else accuracy(test.logits, test.labels)
