"""KNN: distance to the k-th nearest normalised training feature (Sun et al. 2022, ICML, Eq. 2).

Features are L2-normalised (z / (||z|| + 1e-10), as knn-ood does); the score is minus the
Euclidean distance from a test feature to its k-th nearest ID train feature, s(x) = -||z - z_(k)||.
knn-ood and OpenOOD return minus the *squared* distance and pytorch-ood the plain distance as an
outlier score; all three rank alike. k = 50 for CIFAR-10 in the paper (1000 for ImageNet).

Search: faiss ``IndexFlatL2`` (exact, as knn-ood) when faiss is installed, otherwise an exact
search in torch: queries in chunks against the whole bank, in float64 so that near-equal
distances keep their order. The fallback holds the bank in float64 (CIFAR's 50k x 512: 200 MB);
for ImageNet-scale banks install faiss (``pip install faiss-cpu``). Applied to SupCon features this is
"KNN+" of the paper; to CE
features, KNN "w/o contrastive learning".
"""

from __future__ import annotations

import importlib.util
from typing import ClassVar, Literal

import numpy as np
import torch

from ssdlib.detectors.base import Detector, FeatureSet, l2_normalize
from ssdlib.detectors.registry import Field, Method, MethodParams, register

BACKENDS = ("auto", "faiss", "exact")
CHUNK_ENTRIES = 2**25  # query x bank distances held at once by the exact search (256 MB in float64)


def kth_distance_exact(bank: np.ndarray, queries: np.ndarray, k: int, chunk: int | None = None) -> np.ndarray:
    """Euclidean distance from each query to its k-th nearest bank row, exactly, ``chunk`` queries at a
    time (default: as many as keep CHUNK_ENTRIES distances)."""
    chunk = chunk or max(1, CHUNK_ENTRIES // len(bank))
    bank_t = torch.from_numpy(np.asarray(bank, dtype=np.float64))
    bank_sq = (bank_t * bank_t).sum(dim=1)
    out = []
    for start in range(0, len(queries), chunk):
        q = torch.from_numpy(np.asarray(queries[start : start + chunk], dtype=np.float64))
        squared = (q * q).sum(dim=1, keepdim=True) + bank_sq - 2 * q @ bank_t.T
        out.append(squared.topk(k, dim=1, largest=False).values[:, -1].clamp_min(0).sqrt())
    return torch.cat(out).numpy()


def kth_distance_faiss(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The same with faiss ``IndexFlatL2`` (exact L2 search in float32; it returns squared distances)."""
    import faiss  # local: faiss is optional

    index = faiss.IndexFlatL2(bank.shape[1])
    index.add(np.ascontiguousarray(bank, dtype=np.float32))
    squared, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    return np.sqrt(np.maximum(squared[:, -1].astype(np.float64), 0))


class KNN(Detector):
    """Minus the distance to the k-th nearest normalised ID train feature; higher = more ID."""

    name = "KNN"

    def __init__(self, k: int = 50, backend: str = "auto", chunk: int | None = None) -> None:
        super().__init__()
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown KNN backend {backend!r}; choose one of {BACKENDS}")
        has_faiss = importlib.util.find_spec("faiss") is not None
        if backend == "faiss" and not has_faiss:
            raise ImportError("backend='faiss' needs faiss (pip install faiss-cpu), or use backend='exact'")
        self.k, self.chunk = int(k), chunk
        self.backend = ("faiss" if has_faiss else "exact") if backend == "auto" else backend

    def _fit(self, train: FeatureSet) -> None:
        bank = l2_normalize(train.require("features", self.name))
        if self.k > len(bank):
            raise ValueError(f"k = {self.k} exceeds the {len(bank)} train features: use a smaller k")
        self.bank_ = bank

    def _score(self, data: FeatureSet) -> np.ndarray:
        queries = l2_normalize(data.require("features", self.name))
        if self.backend == "faiss":
            return -kth_distance_faiss(self.bank_, queries, self.k)
        return -kth_distance_exact(self.bank_, queries, self.k, self.chunk)


class KNNParams(MethodParams):
    """``baselines.knn``: the grid is a subset of the KNN paper's list of k."""

    k: int = Field(50, ge=1, description="distance to the k-th nearest normalised train feature")
    backend: Literal["auto", "faiss", "exact"] = Field(
        "auto", description="auto = faiss when installed, else an exact chunked torch search"
    )
    grid: dict[str, list] = Field(default_factory=lambda: {"k": [1, 10, 20, 50, 100, 200, 500, 1000]})
    NOT_IN_SETTING: ClassVar[tuple[str, ...]] = ("backend",)  # the same neighbours either way

    def applies(self, fit: FeatureSet) -> bool:
        return self.k <= len(fit)


register(Method("knn", "KNN", KNNParams, lambda s, _model: KNN(s.k, backend=s.backend)))
