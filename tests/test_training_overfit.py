"""A small MIST overfits a small store: its loss falls well below the target variance."""
import json

import numpy as np
import pytest

import mistgen

from mistmodel.checkpoint import load_checkpoint
from mistmodel.model import MISTNet, ModelConfig
from mistmodel.training import TrainConfig, evaluate, open_stores, train


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("stores") / "tiny.zarr"
    mistgen.build_meta_dataset(path, specs=["normal-dense-base", "normal-sparse-base"],
                               count=24, n_range=(20, 40), dim_range=(1, 2), seed=3,
                               shard_size=16, progress=False, workers=1)
    return path


def test_small_model_overfits_small_store(tiny_store, tmp_path):
    ds = open_stores(tiny_store)
    target = np.array([s.mi for s in ds])
    variance = target.var()
    assert variance > 0.1
    cfg = TrainConfig(train=str(tiny_store), val=None, out=str(tmp_path / "run"),
                      variant="mist", epochs=30, batch_size=12, lr=3e-3, warmup=0.05,
                      swap_xy=False, progress=False, threads=1, seed=0)
    state, card = load_checkpoint(train(cfg))
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    losses = [e["train_loss"] for e in metrics["epochs"]]
    assert len(losses) == 30
    net = MISTNet(ModelConfig.from_dict(card["model_config"]))
    net.load_state_dict(state)
    final = evaluate(net, ds, cfg)["mse"]
    print("variance", variance, "first epoch", losses[0], "last epoch", losses[-1], "final", final)
    assert final < 0.4 * variance, (final, variance)
    assert np.mean(losses[-3:]) < 0.3 * losses[0]
