"""Per-epoch monitors: kNN accuracy on encoder features, and top-1 accuracy of a classifier.

The kNN monitor classifies each *test* image by a majority vote of its ``k`` (20) nearest
*training* images under cosine similarity of the penultimate encoder features (``model.features``,
the features SSD scores; ties go to the
smallest label, as in scikit-learn's ``KNeighborsClassifier``). SSD (``utils.knn``) differs in two
ways: it uses the 128-d projection-head output, and it cross-validates the classifier on the test
features themselves (5 folds), so test images vote for test images. Here the training set is the
bank and the test set only queries it, which never lets test data choose the "best" epoch and
measures the features SSD actually scores.

Both monitors take a set as (images, labels) tensors or, for a set streamed from disk, as a
Dataset read in order through a DataLoader (``num_workers``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext

import pandas as pd
import torch
import torch.nn.functional as F

from ssdlib.training import batches
from ssdlib.training.batches import Images
from ssdlib.training.distributed import unwrap


@torch.no_grad()
def outputs(
    model: torch.nn.Module,
    data: Images,
    of: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    *,
    batch_size: int = 512,
    autocast=nullcontext,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``of(model, images)`` of every batch (float32, on the model's device), in eval mode, and the labels."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out, labels = [], []
    try:
        for x, y in batches.read(data, batches.in_order(data, batch_size), num_workers):
            x, y = batches.on_device(x, y, device)
            with autocast():
                out.append(of(model, x).float())
            labels.append(y)
    finally:
        model.train(was_training)
    return torch.cat(out), torch.cat(labels)


def has_features(model: torch.nn.Module) -> bool:
    """Whether ``model`` exposes penultimate features (``SSLNet`` and ``SupNet`` do; GODIN need not)."""
    return callable(getattr(unwrap(model), "features", None))


def encoder_features(
    model: torch.nn.Module, data: Images, *, batch_size: int = 512, autocast=nullcontext, num_workers: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features [N, D] (float32, on the model's device) of ``data``, in eval mode, and its labels."""
    if not has_features(model):
        raise AttributeError(f"{type(model).__name__} has no .features(x): the kNN monitor needs encoder features")
    return outputs(
        model, data, lambda m, x: m.features(x), batch_size=batch_size, autocast=autocast, num_workers=num_workers
    )


def knn_predict(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    k: int = 20,
    num_classes: int | None = None,
    chunk: int = 1024,
) -> torch.Tensor:
    """Labels predicted for ``queries`` by a uniform vote of the ``k`` most cosine-similar bank rows."""
    k = min(k, len(bank))
    num_classes = num_classes or int(bank_labels.max()) + 1
    bank = F.normalize(bank.float(), dim=1)
    out = []
    for start in range(0, len(queries), chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        nearest = (q @ bank.T).topk(k, dim=1).indices
        votes = F.one_hot(bank_labels[nearest], num_classes).sum(dim=1)
        out.append(votes.argmax(dim=1))  # argmax returns the first maximum: the smallest tied label
    return torch.cat(out)


def knn_accuracy(
    model: torch.nn.Module,
    train: Images,
    test: Images,
    *,
    k: int = 20,
    batch_size: int = 512,
    autocast=nullcontext,
    num_workers: int = 0,
) -> float:
    """Fraction of test images whose kNN label (train features as bank) is their true label."""
    options = {"batch_size": batch_size, "autocast": autocast, "num_workers": num_workers}
    bank, bank_labels = encoder_features(model, train, **options)
    queries, labels = encoder_features(model, test, **options)
    pred = knn_predict(bank, bank_labels.to(bank.device), queries, k)
    return (pred == labels.to(pred.device)).sum().item() / len(pred)  # exact: no float32 rounding of the share


def knn_per_class(
    bank: torch.Tensor,
    bank_labels: torch.Tensor,
    queries: torch.Tensor,
    labels: torch.Tensor,
    class_names: list[str],
    k: int = 20,
):
    """Per test class: the kNN monitor's accuracy, and the class its images are most often taken for
    (with that share). It says which classes the features sort and which they still confuse."""
    bank, queries = torch.as_tensor(bank), torch.as_tensor(queries)
    predicted = knn_predict(bank, torch.as_tensor(bank_labels), queries, k, num_classes=len(class_names)).cpu()
    confusion = torch.zeros(len(class_names), len(class_names), dtype=torch.long)
    confusion.index_put_((torch.as_tensor(labels).cpu(), predicted), torch.ones_like(predicted), accumulate=True)
    total = confusion.sum(1).clamp_min(1)
    wrong = confusion.clone().fill_diagonal_(-1)
    taken_for = wrong.argmax(1)
    return pd.DataFrame(
        {
            "accuracy": (confusion.diagonal() / total).numpy(),
            "most often taken for": [class_names[j] for j in taken_for],
            "share": (wrong.gather(1, taken_for[:, None])[:, 0].clamp_min(0) / total).numpy(),
        },
        index=pd.Index(class_names, name="class"),
    )


def classifier_accuracy(
    model: torch.nn.Module, test: Images, *, batch_size: int = 512, autocast=nullcontext, num_workers: int = 0
) -> float:
    """Top-1 accuracy of a model whose forward returns logits (SSD's ``baseeval`` for SupCE, SSOD's
    checkpoint selection). Only each image's predicted class is kept, not its logits."""
    predicted, labels = outputs(
        model, test, lambda m, x: m(x).argmax(1), batch_size=batch_size, autocast=autocast, num_workers=num_workers
    )
    return (predicted.long() == labels).sum().item() / len(labels)
