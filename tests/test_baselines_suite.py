"""The baseline suite: building from params, the validation split, tuning, and the recorded settings."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ssdlib.data.normalize import Normalize
from ssdlib.data.synthetic import SyntheticImages
from ssdlib.detectors.godin import GODIN
from ssdlib.detectors.knn import KNN
from ssdlib.detectors.odin import ODIN
from ssdlib.detectors.react import ReAct
from ssdlib.detectors.vim import ViM
from ssdlib.evaluation import baselines as bl
from ssdlib.metrics import auroc
from ssdlib.models.godin import GODINNet
from ssdlib.models.heads import SupNet
from ssdlib.params import BaselineParams

SIZE, D, C = 8, 12, 3


class Encoder(nn.Sequential):
    out_dim = D

    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(3 * SIZE * SIZE, D), nn.ReLU())


def coloured(n, seed):
    """Images whose class sets the dominant channel: an easy ID set for a random linear encoder."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    x = 0.3 * torch.rand(n, 3, SIZE, SIZE, generator=g)
    x[torch.arange(n), y] += 0.6
    return TensorDataset(x, y)


@pytest.fixture(scope="module")
def cache():
    torch.manual_seed(0)
    model = SupNet(Encoder(), C, normalize=Normalize((0.5,) * 3, (0.25,) * 3)).eval()
    sets = {"train": coloured(200, 0), "test": coloured(60, 1), "uniform": SyntheticImages("uniform", 50, SIZE, seed=0)}
    return bl.FeatureCache(model, sets)


def test_build_reads_every_value_from_params(cache):
    p = BaselineParams(
        odin={"temperature": 10.0, "epsilon": 0.002},
        knn={"k": 7, "backend": "exact"},
        react={"percentile": 80.0},
        vim={"dim": 5},
        godin={"epsilon": 0.01},
    )
    odin = bl.build("odin", p)
    assert isinstance(odin, ODIN) and (odin.temperature, odin.epsilon) == (10.0, 0.002)
    knn = bl.build("knn", p)
    assert isinstance(knn, KNN) and knn.k == 7 and knn.backend == "exact"
    react = bl.build("react", p, cache.model)
    assert isinstance(react, ReAct) and react.percentile == 80.0
    np.testing.assert_array_equal(react.weight, cache.model.head.weight.detach().double().numpy())
    assert isinstance(bl.build("vim", p, cache.model), ViM)
    assert bl.build("godin", p).epsilon == 0.01
    with pytest.raises(ValueError, match="tune"):
        bl.build("godin", BaselineParams())
    with pytest.raises(ValueError, match="classifier"):
        bl.build("react", p)
    with pytest.raises(ValueError, match="unknown baseline"):
        bl.build("msp2", p)


def test_validation_ood_is_a_fresh_synthetic_draw_and_never_a_test_set():
    val = bl.validation_ood("gaussian", 5, SIZE, seed=0)
    test = SyntheticImages("gaussian", 5, SIZE, seed=0)
    assert not torch.equal(val[0][0], test[0][0])
    with pytest.raises(ValueError, match="test set"):
        bl.validation_ood("textures", 5, SIZE, seed=0)


def test_add_validation_splits_train_into_a_fit_part_and_a_hold_out(cache):
    p = BaselineParams(tune_on="gaussian", tune_samples=40, tune_id_fraction=0.25)
    bl.add_validation(cache, p, SIZE, seed=0)
    fit, held = cache._subsets["fit"][1], cache._subsets["id_val"][1]
    assert len(held) == 50 and len(fit) == 150
    assert set(fit).isdisjoint(held) and set(fit) | set(held) == set(range(200))
    np.testing.assert_array_equal(cache.plain("id_val").features, cache.plain("train").features[held])
    assert len(cache.sets["ood_val"]) == 40


def test_tuning_knn_picks_the_best_validation_auroc(cache):
    p = BaselineParams(
        tune_on="gaussian",
        tune_samples=40,
        tune_id_fraction=0.25,
        knn={"backend": "exact", "grid": {"k": [1, 5, 20, 400]}},
    )
    bl.add_validation(cache, p, SIZE, seed=0)
    chosen, grid = bl.tune("knn", p, cache)
    assert grid["knn_k"].tolist() == [1, 5, 20]  # 400 exceeds the 150 fitted features: skipped
    det = KNN(5, backend="exact").fit(cache.plain("fit"))
    expected = auroc(det.score(cache.plain("id_val")), det.score(cache.plain("ood_val")))
    assert grid.loc[grid.knn_k == 5, "value"].item() == pytest.approx(expected)
    assert chosen.knn.k == int(grid.loc[grid["value"].idxmax(), "knn_k"])
    assert isinstance(chosen.knn.k, int)


def test_run_records_defaults_or_tuning_and_refits_on_all_of_train(cache):
    p = BaselineParams(knn={"k": 5, "backend": "exact"}, tune=False)
    [scored] = bl.run(["knn"], p, cache, ["uniform"], image_size=SIZE, seed=0)
    assert scored.method == "KNN" and scored.setting == "knn_k=5" and scored.grid is None
    direct = KNN(5, backend="exact").fit(cache.plain("train"))
    np.testing.assert_allclose(scored.ood_scores["uniform"], direct.score(cache.plain("uniform")))
    np.testing.assert_allclose(scored.id_scores, direct.score(cache.plain("test")))

    tuned_p = BaselineParams.model_validate(
        {
            **p.model_dump(),
            "tune": True,
            "tune_samples": 40,
            "knn": {"k": 5, "backend": "exact", "grid": {"k": [1, 5, 20]}},
        }
    )
    [tuned] = bl.run(["knn"], tuned_p, cache, ["uniform"], image_size=SIZE, seed=0, names={"knn": "KNN+"})
    k = int(tuned.grid.loc[tuned.grid["value"].idxmax(), "knn_k"])
    assert tuned.method == "KNN+" and tuned.setting.startswith(f"knn_k={k}; knn_k tuned by AUROC")
    assert "gaussian" in tuned.setting
    np.testing.assert_allclose(
        tuned.id_scores, KNN(k, backend="exact").fit(cache.plain("train")).score(cache.plain("test"))
    )
    rows = tuned.rows(id_dataset="toy", seed=0)
    assert rows[0]["setting"] == tuned.setting and rows[0]["ood_dataset"] == "uniform"


def test_godin_eps_is_chosen_by_mean_id_score_without_ood_data():
    torch.manual_seed(0)
    model = GODINNet(Encoder(), C, normalize=Normalize((0.5,) * 3, (0.25,) * 3)).eval()
    cache = bl.FeatureCache(model, {"train": coloured(40, 0), "test": coloured(20, 1)})
    p = BaselineParams(tune=False, tune_samples=10, godin={"epsilon": None, "grid": {"epsilon": [0.0, 0.01]}})
    [scored] = bl.run(["godin"], p, cache, [], image_size=SIZE, seed=0)
    assert scored.grid["criterion"].unique().tolist() == ["mean ID score"]
    detectors = [GODIN(e).fit(cache.plain("fit")) for e in (0.0, 0.01)]
    means = [d.score(d.extract(model, cache.sets["id_val"])).mean() for d in detectors]
    np.testing.assert_allclose(scored.grid["value"], means, rtol=1e-6)
    assert scored.setting.startswith(f"godin_epsilon={(0.0, 0.01)[int(np.argmax(means))]}; godin_epsilon tuned by")


def test_input_space_methods_re_extract_and_the_rest_share_cached_features(cache):
    assert cache.plain("test") is cache.plain("test")
    assert cache.represent(bl.build("knn", BaselineParams()), "test") is cache.plain("test")
    odin = bl.build("odin", BaselineParams(odin={"epsilon": 0.01}))
    assert cache.represent(odin, "test") is not cache.plain("test")


def test_react_source_val_takes_the_percentile_on_the_id_validation_hold_out(cache):
    cache = bl.FeatureCache(cache.model, {k: cache.sets[k] for k in ("train", "test", "uniform")})  # no hold-out yet
    p = BaselineParams(react={"source": "val"})
    [scored] = bl.run(["react"], p, cache, ["uniform"], image_size=SIZE, seed=3)
    # the hold-out by hand: tune_id_fraction (0.1) of the 200 train rows, drawn with the run's seed
    held = np.sort(np.random.default_rng(3).permutation(200)[:20])
    train = cache.plain("train").features.astype(np.float64)
    c_val, c_train = np.percentile(train[held], 90.0), np.percentile(train, 90.0)
    assert c_val != pytest.approx(c_train)
    w = cache.model.head.weight.detach().double().numpy()
    b = cache.model.head.bias.detach().double().numpy()
    logits = np.minimum(cache.plain("test").features.astype(np.float64), c_val) @ w.T + b
    expected = np.log(np.exp(logits).sum(axis=1))  # the energy score at T = 1
    np.testing.assert_allclose(scored.id_scores, expected, rtol=1e-6)
    assert scored.setting == "react_percentile=90.0, react_source=val"
    [default] = bl.run(["react"], BaselineParams(), cache, [], image_size=SIZE, seed=3)
    np.testing.assert_allclose(
        default.id_scores, ReAct(w, b).fit(cache.plain("train")).score(cache.plain("test")), rtol=1e-12
    )
