"""Per-epoch monitors: kNN accuracy on encoder features, and top-1 accuracy of a classifier.

The kNN monitor classifies each *test* image by a majority vote of its ``k`` (20) nearest
*training* images under cosine similarity of the penultimate encoder features (``model.features``,
the features SSD scores; ties go to the
smallest label, as in scikit-learn's ``KNeighborsClassifier``). SSD (``utils.knn``) differs in two
ways: it uses the 128-d projection-head output, and it cross-validates the classifier on the test
features themselves (5 folds), so test images vote for test images. Here the training set is the
bank and the test set only queries it, which never lets test data choose the "best" epoch and
measures the features SSD actually scores.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ssdlib.training.distributed import unwrap


def has_features(model: torch.nn.Module) -> bool:
    """Whether ``model`` exposes penultimate features (``SSLNet`` and ``SupNet`` do; GODIN need not)."""
    return callable(getattr(unwrap(model), "features", None))


@torch.no_grad()
def encoder_features(
    model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 512, autocast=nullcontext
) -> torch.Tensor:
    """Penultimate features [N, D] (float32, on the model's device) of images ``x``, in eval mode."""
    model = unwrap(model)
    if not has_features(model):
        raise AttributeError(f"{type(model).__name__} has no .features(x): the kNN monitor needs encoder features")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, len(x), batch_size):
            with autocast():
                out.append(model.features(x[start : start + batch_size].to(device, non_blocking=True)).float())
    finally:
        model.train(was_training)
    return torch.cat(out)


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
    train: tuple[torch.Tensor, torch.Tensor],
    test: tuple[torch.Tensor, torch.Tensor],
    *,
    k: int = 20,
    batch_size: int = 512,
    autocast=nullcontext,
) -> float:
    """Fraction of test images whose kNN label (train features as bank) is their true label."""
    bank = encoder_features(model, train[0], batch_size=batch_size, autocast=autocast)
    queries = encoder_features(model, test[0], batch_size=batch_size, autocast=autocast)
    pred = knn_predict(bank, train[1].to(bank.device), queries, k)
    return (pred == test[1].to(pred.device)).sum().item() / len(pred)  # exact: no float32 rounding of the share


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
    import pandas as pd

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


@torch.no_grad()
def classifier_accuracy(
    model: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor], *, batch_size: int = 512, autocast=nullcontext
) -> float:
    """Top-1 accuracy of a model whose forward returns logits (SSD's ``baseeval`` for SupCE)."""
    model = unwrap(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    try:
        for start in range(0, len(test[0]), batch_size):
            with autocast():
                logits = model(test[0][start : start + batch_size].to(device, non_blocking=True))
            correct += (logits.argmax(1).cpu() == test[1][start : start + batch_size].cpu()).sum().item()
    finally:
        model.train(was_training)
    return correct / len(test[0])
