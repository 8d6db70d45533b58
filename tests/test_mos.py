"""MOS: group targets, the group loss against a written-out sum of cross-entropies, the score on a
hand-made case, the repository's schedule, and a tiny fine-tuning run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_experiment import tiny_bundle, tiny_params

from ssdlib import experiment, mos, profiles
from ssdlib.detectors.base import FeatureSet
from ssdlib.detectors.mos import MOS, check_groups, group_loss, resolve, slices, targets
from ssdlib.features import extract
from ssdlib.training import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

GROUPS = [[0, 2], [1]]  # logits: [others, class 0, class 2 | others, class 1]


def test_targets_name_the_class_in_its_group_and_others_elsewhere():
    assert targets(torch.tensor([0, 1, 2]), GROUPS).tolist() == [[1, 0], [0, 1], [2, 0]]
    assert slices(GROUPS) == [slice(0, 3), slice(3, 5)]
    with pytest.raises(ValueError, match="exactly once"):
        check_groups([[0, 1], [1, 2]], 3)
    with pytest.raises(ValueError, match="exactly once"):
        check_groups([[0, 1]], 3)


def test_the_group_loss_is_the_sum_of_each_group_s_cross_entropy():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, 5), torch.tensor([0, 1, 2, 2])
    expected = 0.0
    for row, label in zip(logits.tolist(), labels.tolist()):
        first, second = row[:3], row[3:]
        t1 = {0: 1, 2: 2}.get(label, 0)
        t2 = 1 if label == 1 else 0
        expected += -(first[t1] - math.log(sum(map(math.exp, first))))
        expected += -(second[t2] - math.log(sum(map(math.exp, second))))
    loss = group_loss(logits, targets(labels, GROUPS), GROUPS)
    assert loss.item() == pytest.approx(expected / 4, rel=1e-6)


def test_the_score_is_minus_the_smallest_others_probability():
    logits = np.array([[0.0, 0.0, 0.0, np.log(3.0), 0.0], [5.0, 0.0, 0.0, 5.0, 0.0]])
    # image 0: p(others) 1/3 in group 1, 3/4 in group 2 -> -1/3; image 1: both groups sure of "others"
    scores = MOS(GROUPS).fit(FeatureSet()).score(FeatureSet(logits=logits))
    p1 = np.exp(5) / (np.exp(5) + 2)
    p2 = np.exp(5) / (np.exp(5) + 1)
    np.testing.assert_allclose(scores, [-1 / 3, -min(p1, p2)])


def test_the_repository_s_schedule():
    assert mos.schedule(5000) == [100, 200, 300, 400, 500]
    assert mos.schedule(1_281_167) == [500, 6000, 12_000, 18_000, 20_000]
    supports = mos.schedule(5000)
    lrs = [mos.lr_at(s, supports, 0.003) for s in (0, 50, 150, 200, 201, 301, 499)]
    np.testing.assert_allclose(lrs, [0.0, 0.0015, 0.003, 0.003, 0.0003, 0.00003, 0.000003])


@pytest.mark.slow
def test_a_tiny_mos_run_fine_tunes_only_the_head_once(tmp_path):
    P = profiles.validate(
        {
            **tiny_params().model_dump(mode="json"),
            "mos": {"groups": [[0, 3], [1, 2]], "batch_size": 16, "steps": [2, 4, 6]},
        }
    )
    bundle = tiny_bundle()
    model = mos.trained(P, bundle, tmp_path)
    classifier = torch.load(tmp_path / "checkpoints" / "SupCE_resnet18_w4.pt", weights_only=False)["model"]
    encoder = {k[len("encoder.") :]: v for k, v in classifier.items() if k.startswith("encoder.")}
    for k, v in model.encoder.state_dict().items():
        torch.testing.assert_close(v, encoder[k])  # the encoder stayed the classifier's
    state = load_checkpoint(tmp_path / "checkpoints" / "MOS_resnet18_w4.pt")
    assert len(state["loss"]) == 6 and np.isfinite(state["loss"]).all() and model.head.weight.abs().sum() > 0
    scores = MOS(P.mos.groups).fit(FeatureSet()).score(extract(model, bundle.test))
    assert scores.shape == (len(bundle.test),) and (scores < 0).all() and (scores >= -1).all()
    again = mos.trained(P, bundle, tmp_path)  # loaded, not trained again
    torch.testing.assert_close(again.head.weight, model.head.weight)

    # notebook 05 scores MOS on the CE classifier's features: the same logits as a pass of the MOS network
    from_classifier = mos.on_features(model, extract(experiment.classifier_for(P, bundle, tmp_path), bundle.test))
    np.testing.assert_allclose(from_classifier.logits, extract(model, bundle.test).logits, rtol=1e-4, atol=1e-5)


def test_the_imagenet_preset_is_the_repository_s_8_wordnet_groups():
    """Sizes as the MOS paper gives them; classes in torchvision's order (sorted WordNet ids): tench
    (n01440764) is class 0, in group 0; toilet tissue (n15075141) is class 999, in group 4."""
    groups = resolve("imagenet")
    assert [len(g) for g in groups] == [398, 521, 9, 7, 52, 8, 3, 2]
    check_groups(groups, 1000)
    assert 0 in groups[0] and 999 in groups[4]
    with pytest.raises(ValueError, match="no MOS group preset named 'cifar'"):
        resolve("cifar")
