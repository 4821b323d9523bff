"""Checkpoints: save / load / resume round trip, reproducibility, files beside them."""
import json

import numpy as np
import pytest
import torch

import mistgen

from mistmodel.batching import plan_chunks  # noqa: E402
from mistmodel.mist import MIST  # noqa: E402
from mistmodel.training import (TrainConfig, export_model, iterate_batches,  # noqa: E402
                                open_stores, train)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    specs = ["normal-dense-base", "student-sparse-asinh"]
    tr = mistgen.build_meta_dataset(root / "train.zarr", specs=specs, count=24, n_range=(10, 40),
                                    dim_range=(1, 3), dim_y_range=(1, 2), seed=0,
                                    shard_size=8, progress=False, workers=1)
    va = mistgen.build_meta_dataset(root / "val.zarr", specs=specs, count=8, n_range=(10, 40),
                                    dim_range=(1, 3), seed=1, split="val", shard_size=8,
                                    progress=False, workers=1)
    return tr.path, va.path


def config(stores, out, epochs, variant="mist_qr", **kw):
    return TrainConfig(train=str(stores[0]), val=str(stores[1]), out=str(out), variant=variant,
                       epochs=epochs, batch_size=8, buffer_shards=2, lr=2e-3, progress=False,
                       threads=1, seed=7, model={"width": 8, "summary_width": 16,
                                                 "pair_width": 8, "head_hidden": 16}, **kw)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_reproduces_an_uninterrupted_run(stores, tmp_path):
    straight = train(config(stores, tmp_path / "straight", epochs=2))
    train(config(stores, tmp_path / "resumed", epochs=2, epochs_per_call=1))
    first = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)
    assert first["epoch"] == 0 and "optimizer_state" in first and "scheduler_state" in first
    resumed = train(config(stores, tmp_path / "resumed", epochs=2))
    a = torch.load(straight, weights_only=False)
    b = torch.load(resumed, weights_only=False)
    assert a["epoch"] == b["epoch"] == 1
    assert a["step"] == b["step"] and a["samples_seen"] == b["samples_seen"]
    assert states_equal(a["model_state"], b["model_state"])
    assert not states_equal(first["model_state"], b["model_state"])
    assert len(b["history"]["epochs"]) == 2


def test_files_beside_checkpoint_and_load_round_trip(stores, tmp_path):
    out = tmp_path / "run"
    path = train(config(stores, out, epochs=1, variant="mist"))
    for name in ("checkpoint.pt", "best.pt", "metrics.json", "curves.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "mist"
    assert set(metrics["final_validation"]["mse_by_n"]) == {"[10,100)", "[100,300)", "[300,500]"}
    assert metrics["data_ranges"]["dim_y"][1] <= 2
    # the estimator loads the training checkpoint and the exported one identically
    slim = export_model(path, tmp_path / "slim.pt")
    assert "optimizer_state" not in torch.load(slim, weights_only=False)
    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal((30, 2)), rng.standard_normal((30, 1))) for _ in range(3)]
    full, small = MIST.load(path), MIST.load(slim)
    np.testing.assert_array_equal(full.estimate_batch(samples), small.estimate_batch(samples))
    assert full.variant == "mist" and full.data_ranges == metrics["data_ranges"]


def test_step_budget_ends_the_schedule_and_repeats_exactly(stores, tmp_path):
    cfg = dict(epochs=3, variant="mist", max_steps=5, warmup=0.0)
    for run in ("a", "b"):
        train(config(stores, tmp_path / run, **cfg))
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=False) for run in "ab")
    assert a["step"] == b["step"] == 5 and a["stopped_early"] and a["epoch"] < 2
    assert states_equal(a["model_state"], b["model_state"])
    # the schedule runs over the 5 steps: the last step used the cosine at progress 4/5
    lr = 2e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 4 / 5)))
    assert a["history"]["epochs"][-1]["lr"] == pytest.approx(lr, rel=1e-6)
    # a step-budget stop is final: calling again trains no further
    train(config(stores, tmp_path / "a", **cfg))
    again = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=False)
    assert again["step"] == 5 and states_equal(again["model_state"], a["model_state"])


@pytest.mark.parametrize("bad, message", [({"max_steps": 0}, "max_steps"),
                                          ({"max_steps": 2.5}, "max_steps"),
                                          ({"time_budget_min": -1.0}, "time_budget_min")])
def test_bad_budgets_are_refused(stores, tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        config(stores, tmp_path / "x", epochs=1, **bad)


def test_resume_refuses_a_different_model(stores, tmp_path):
    train(config(stores, tmp_path / "run", epochs=1))
    other = config(stores, tmp_path / "run", epochs=2)
    other.model = dict(other.model, width=16)
    with pytest.raises(ValueError, match="different model configuration"):
        train(other)


def test_streamed_batches_are_bucketed_and_bounded(stores):
    ds = open_stores(stores[0])
    cfg = config(stores, "unused", epochs=1, max_cells=2000)
    batches = list(iterate_batches(ds, [0, 0], cfg, copula=True))
    assert sum(len(b) for b in batches) == len(ds)
    for b in batches:
        B, N, D = b.values.shape
        assert B <= cfg.batch_size
        assert B == 1 or B * N * D <= cfg.max_cells
        assert (b.row_mask.sum(1) == b.n).all()
    again = list(iterate_batches(ds, [0, 0], cfg, copula=True))
    assert all(torch.equal(a.values, c.values) for a, c in zip(batches, again))


def test_plan_chunks_limits_padding():
    shapes = [(500, 2, 2), (10, 1, 1), (480, 2, 2), (12, 1, 1), (20, 30, 30)]
    chunks = plan_chunks(shapes, max_cells=10_000, max_batch=8)
    assert sorted(i for c in chunks for i in c) == list(range(5))
    assert sorted(map(sorted, chunks)) == [[0, 2], [1, 3], [4]]
    for chunk in plan_chunks(shapes * 10, max_cells=10_000, max_batch=4):
        n = max(shapes[i % 5][0] for i in chunk)
        d = max(sum(shapes[i % 5][1:]) for i in chunk)
        assert len(chunk) <= 4 and (len(chunk) == 1 or len(chunk) * n * d <= 10_000)


def test_train_command_line_and_export(stores, tmp_path):
    from mistmodel.train import main
    dest = tmp_path / "export" / "m.pt"
    code = main(["--train", str(stores[0]), "--val", str(stores[1]), "--out", str(tmp_path / "cli"),
                 "--variant", "mist_qr", "--epochs", "1", "--batch-size", "8", "--threads", "1",
                 "--no-progress", "--model", "width=8", "--model", "summary_width=16",
                 "--export-to", str(dest)])
    assert code == 0
    assert dest.is_file() and dest.with_suffix(".json").is_file()
    meta = json.loads(dest.with_suffix(".json").read_text())
    assert meta["variant"] == "mist_qr" and meta["model_config"]["width"] == 8
    assert 0.0 <= meta["final_validation"]["coverage"] <= 1.0
    qr = MIST.load(dest)
    assert qr.is_quantile
