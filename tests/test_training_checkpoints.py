"""Checkpoints: save / load / resume round trip, reproducibility, files beside them."""
import json
import threading

import numpy as np
import pytest
import torch

import mistgen

from mistmodel.batching import plan_chunks
from mistmodel.checkpoint import CheckpointError, load_checkpoint, read_card, save_checkpoint
from mistmodel.mist import MIST
from mistmodel.model import MISTNet, ModelConfig
from mistmodel.publish import publish
from mistmodel.training import (TRAINING_STATE, TrainConfig, iterate_batches, open_stores,
                                read_training_state, train)


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
    kw = {"threads": 1, **kw}
    return TrainConfig(train=str(stores[0]), val=str(stores[1]), out=str(out), variant=variant,
                       epochs=epochs, batch_size=8, buffer_shards=2, lr=2e-3, progress=False,
                       seed=7, model={"width": 8, "summary_width": 16,
                                      "pair_width": 8, "head_hidden": 16}, **kw)


def states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def estimator(path):
    state, card = load_checkpoint(path)
    net = MISTNet(ModelConfig.from_dict(card["model_config"]))
    net.load_state_dict(state)
    return MIST(net, card, checkpoint=str(path))


def test_resume_reproduces_an_uninterrupted_run(stores, tmp_path):
    train(config(stores, tmp_path / "straight", epochs=2))
    train(config(stores, tmp_path / "resumed", epochs=2, epochs_per_call=1))
    first = read_training_state(tmp_path / "resumed")
    assert first["epoch"] == 0 and "optimizer_state" in first and "scheduler_state" in first
    train(config(stores, tmp_path / "resumed", epochs=2))
    a, b = (read_training_state(tmp_path / run) for run in ("straight", "resumed"))
    assert a["epoch"] == b["epoch"] == 1
    assert a["step"] == b["step"] and a["samples_seen"] == b["samples_seen"]
    assert states_equal(a["model_state"], b["model_state"])
    assert not states_equal(first["model_state"], b["model_state"])
    assert len(b["history"]["epochs"]) == 2
    # the loss curve too: the running mean goes on where the first call left it
    assert a["history"]["steps"] == b["history"]["steps"]


def test_the_same_run_writes_the_same_checkpoint_bytes(stores, tmp_path):
    # the card holds no wall time: the same config, seed and threads give the same file
    import shutil

    out = tmp_path / "run"
    first = train(config(stores, out, epochs=1, variant="mist")).read_bytes()
    assert "elapsed_s" not in json.dumps(read_card(out / "checkpoint.safetensors"))
    assert read_training_state(out)["elapsed_s"] > 0      # kept for a time budget's resume
    shutil.rmtree(out)
    assert train(config(stores, out, epochs=1, variant="mist")).read_bytes() == first


def test_files_beside_checkpoint_and_load_round_trip(stores, tmp_path):
    out = tmp_path / "run"
    path = train(config(stores, out, epochs=1, variant="mist"))
    assert path == out / "checkpoint.safetensors"
    for name in ("checkpoint.safetensors", TRAINING_STATE, "metrics.json", "curves.png"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["variant"] == "mist"
    assert set(metrics["final_validation"]["mse_by_n"]) == {"[10,100)", "[100,300)", "[300,500]",
                                                          "(500,...)"}
    assert metrics["data_ranges"]["dim_y"][1] <= 2
    # the card records the run and the stores it read; the weights are the latest epoch's
    card = read_card(path)
    assert card["variant"] == "mist" and card["data_ranges"] == metrics["data_ranges"]
    # the largest training MI by the narrower side's width, from the store's index
    index = mistgen.open_meta_dataset(stores[0]).index
    narrow = np.minimum(index.dim_x.values, index.dim_y.values)
    assert list(card["mi_ceiling"]) == [str(m) for m in range(narrow.min(), narrow.max() + 1)]
    for m, top in card["mi_ceiling"].items():
        assert 0 <= top - index.mi.values[narrow <= int(m)].max() < 1e-4
    assert [r["split"] for r in card["stages"][0]["train_recipes"]] == ["train"]
    state, _ = load_checkpoint(path)
    saved = read_training_state(out)
    assert states_equal(state, saved["model_state"])
    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal((30, 2)), rng.standard_normal((30, 1))) for _ in range(3)]
    mist = estimator(path)
    assert mist.variant == "mist" and mist.data_ranges == metrics["data_ranges"]
    assert np.isfinite(mist.estimate_batch(samples)).all()


def test_training_state_holds_plain_data_only(stores, tmp_path):
    train(config(stores, tmp_path / "run", epochs=1))
    # weights_only=True refuses anything but tensors and plain containers
    state = torch.load(tmp_path / "run" / TRAINING_STATE, weights_only=True)
    assert {"model_state", "optimizer_state", "scheduler_state", "rng_state"} <= set(state)


def test_init_chains_stages_in_the_card(stores, tmp_path):
    first = train(config(stores, tmp_path / "s1", epochs=1, max_steps=2))
    second = train(config(stores, tmp_path / "s2", epochs=1, max_steps=2, init=str(first)))
    stages = read_card(second)["stages"]
    assert [s["step"] for s in stages] == [2, 2]
    assert stages[1]["train_config"]["init"] == str(first)
    # the second stage started from the first stage's weights, not from a fresh network
    fresh = train(config(stores, tmp_path / "fresh", epochs=1, max_steps=2))
    a, b = load_checkpoint(second)[0], load_checkpoint(fresh)[0]
    assert not states_equal(a, b)


def test_init_from_a_card_older_than_the_model_options(stores, tmp_path):
    # cards written before conditional/anchor/corrected_stat existed (the shipped mist and
    # mist_qr) hold those options at their defaults; a different config is still refused
    first = train(config(stores, tmp_path / "s1", epochs=1, max_steps=1))
    state, card = load_checkpoint(first)
    for key in ("conditional", "anchor", "corrected_stat"):
        del card["model_config"][key]
    old = save_checkpoint(tmp_path / "old.safetensors", state, card)
    second = train(config(stores, tmp_path / "s2", epochs=1, max_steps=1, init=str(old)))
    assert read_card(second)["stages"][0]["step"] == 1
    card["model_config"]["width"] = 12
    wider = save_checkpoint(tmp_path / "wider.safetensors", state, card)
    with pytest.raises(ValueError, match="different model configuration"):
        train(config(stores, tmp_path / "s3", epochs=1, max_steps=1, init=str(wider)))


def test_init_refuses_a_pickle_file(stores, tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model_state": {}}, evil)
    with pytest.raises(CheckpointError, match="pickle"):
        train(config(stores, tmp_path / "run", epochs=1, init=str(evil)))


def test_threads_are_restored_after_training_also_on_error(stores, tmp_path):
    before = torch.get_num_threads()
    wanted = 2 if before != 2 else 3
    train(config(stores, tmp_path / "run", epochs=1, max_steps=1, threads=wanted))
    assert torch.get_num_threads() == before
    with pytest.raises(FileNotFoundError):
        train(config(stores, tmp_path / "bad", epochs=1, threads=wanted,
                     init=str(tmp_path / "missing.safetensors")))
    assert torch.get_num_threads() == before
    seen = []
    worker = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [before]


def test_publish_copies_checkpoint_and_card(stores, tmp_path):
    path = train(config(stores, tmp_path / "run", epochs=1, variant="mist_qr"))
    weights, record = publish(path, "mist_qr", tmp_path / "pkg")
    assert weights == tmp_path / "pkg" / "mist_qr.safetensors"
    assert weights.read_bytes() == path.read_bytes()
    assert json.loads(record.read_text()) == read_card(path)
    with pytest.raises(CheckpointError, match="mist_qr"):
        publish(path, "mist", tmp_path / "pkg")
    assert not (tmp_path / "pkg" / "mist.safetensors").exists()
    state, card = load_checkpoint(path)
    state.pop(next(iter(state)))             # weights that no longer fit the card's config
    save_checkpoint(tmp_path / "broken.safetensors", state, card)
    with pytest.raises(CheckpointError, match="missing"):
        publish(tmp_path / "broken.safetensors", "mist_qr", tmp_path / "pkg2")
    assert not (tmp_path / "pkg2" / "mist_qr.safetensors").exists()


def test_step_budget_ends_the_schedule_and_repeats_exactly(stores, tmp_path):
    cfg = dict(epochs=3, variant="mist", max_steps=5, warmup=0.0)
    for run in ("a", "b"):
        train(config(stores, tmp_path / run, **cfg))
    a, b = (read_training_state(tmp_path / run) for run in "ab")
    assert a["step"] == b["step"] == 5 and a["stopped_early"] and a["epoch"] < 2
    assert states_equal(a["model_state"], b["model_state"])
    # the schedule runs over the 5 steps: step k used the cosine at progress (k - 1) / 5
    lrs = [row[3] for row in a["history"]["steps"]]
    expected = [2e-3 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * k / 5))) for k in range(5)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-6)
    assert a["history"]["epochs"][-1]["lr"] == pytest.approx(expected[-1], rel=1e-6)
    # a step-budget stop is final: calling again trains no further
    train(config(stores, tmp_path / "a", **cfg))
    again = read_training_state(tmp_path / "a")
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


def test_train_command_line(stores, tmp_path):
    from mistmodel.train import main
    out = tmp_path / "cli"
    code = main(["--train", str(stores[0]), "--val", str(stores[1]), "--out", str(out),
                 "--variant", "mist_qr", "--epochs", "1", "--batch-size", "8", "--threads", "1",
                 "--no-progress", "--model", "width=8", "--model", "summary_width=16",
                 "--log-weight", "0.2", "--log-eps", "0.05"])
    assert code == 0
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["variant"] == "mist_qr" and meta["model_config"]["width"] == 8
    assert (meta["config"]["log_weight"], meta["config"]["log_eps"]) == (0.2, 0.05)
    assert 0.0 <= meta["final_validation"]["coverage"] <= 1.0
    assert estimator(out / "checkpoint.safetensors").is_quantile


def test_train_command_line_refuses_bad_settings_cleanly(stores, tmp_path, capsys):
    from mistmodel.train import main

    tiny = ["--model", "width=8", "--model", "summary_width=16", "--threads", "1",
            "--no-progress", "--epochs", "1", "--batch-size", "8"]
    cases = [
        (["--epochs", "0"], "epochs must be"),
        (["--model", "width=0"], "width"),
        (["--model", "variant=mist_qr"], "model may not set variant"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "nope"],
         "device"),
        (["--train", str(stores[0]), str(stores[0])], "given twice"),
    ]
    for extra, message in cases:
        out = tmp_path / "bad"
        argv = ["--train", str(stores[0]), "--val", str(stores[1]), "--out", str(out),
                *tiny, *extra]
        assert main(argv) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("python -m mistmodel.train: error:") and message in err, err
        assert "Traceback" not in err and not out.exists(), extra    # nothing left behind
    # another run's files in --out: refused, kept; --no-resume starts over there knowingly
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text("my notes")
    argv = ["--train", str(stores[0]), "--val", str(stores[1]), "--out", str(other), *tiny]
    assert main(argv) == 2 and "holds metrics.json but no training_state.pt" in \
        capsys.readouterr().err
    assert (other / "metrics.json").read_text() == "my notes"
    assert main([*argv, "--no-resume"]) == 0
    # --out inside a store, and a file
    inside = ["--train", str(stores[0]), "--val", str(stores[1]), *tiny]
    assert main([*inside, "--out", str(stores[1])]) == 2
    assert "inside the store" in capsys.readouterr().err
    (tmp_path / "file.txt").write_text("x")
    assert main([*inside, "--out", str(tmp_path / "file.txt")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_publish_names_a_dest_it_cannot_write(stores, tmp_path, capsys):
    from mistmodel.publish import main

    path = train(config(stores, tmp_path / "run", epochs=1, variant="mist"))
    (tmp_path / "file.txt").write_text("x")
    assert main([str(path), "--variant", "mist", "--dest", str(tmp_path / "file.txt")]) == 2
    assert "--dest" in capsys.readouterr().err


def test_training_leaves_the_callers_random_state_alone(stores, tmp_path):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    train(config(stores, tmp_path / "run", epochs=1, variant="mist"))
    assert torch.equal(torch.rand(3), expected)


def test_a_removed_checkpoint_retrains_from_scratch_to_the_same_weights(stores, tmp_path):
    cfg = config(stores, tmp_path / "run", epochs=1, variant="mist")
    path = train(cfg)
    first, _ = load_checkpoint(path)
    path.unlink()                              # what a forced rerun of the rule does
    with pytest.warns(RuntimeWarning, match="starts afresh"):
        again, _ = load_checkpoint(train(cfg))
    assert states_equal(again, first)


@pytest.mark.parametrize("bad", [{"grad_clip": -1.0}, {"grad_clip": 0.0}, {"batch_size": 0},
                                 {"epochs": 0}, {"warmup": 2.0}, {"min_lr_ratio": -1.0},
                                 {"taus_per_sample": 0}, {"lr": float("nan")},
                                 {"subsample_rows": 5.0}, {"epochs_per_call": 0}])
def test_bad_settings_are_refused_before_any_file_is_written(stores, tmp_path, bad):
    import dataclasses
    name = next(iter(bad))
    with pytest.raises(ValueError, match=f"^{name} must be"):
        dataclasses.replace(config(stores, tmp_path / "run", epochs=1), **bad)
    assert not (tmp_path / "run").exists()


def test_a_run_resumes_only_under_its_own_settings(stores, tmp_path):
    out = tmp_path / "run"
    train(config(stores, out, epochs=1))
    import dataclasses
    with pytest.raises(ValueError, match="other lr, seed than asked for.*--no-resume"):
        train(dataclasses.replace(config(stores, out, epochs=1), lr=1e-4, seed=99))
    # more epochs lay the schedule out anew: not the run that was saved
    with pytest.raises(ValueError, match="other epochs than asked for"):
        train(config(stores, out, epochs=2))
    assert read_training_state(out)["epoch"] == 0


def test_a_store_rebuilt_at_the_same_path_is_not_resumed_on(stores, tmp_path):
    import shutil
    train_copy = tmp_path / "train.zarr"
    shutil.copytree(stores[0], train_copy)
    out = tmp_path / "run"
    train(config((train_copy, stores[1]), out, epochs=2, epochs_per_call=1))
    mistgen.build_meta_dataset(train_copy, specs=["normal-dense-base"], count=16,
                               n_range=(10, 40), dim_range=(1, 3), seed=5, shard_size=8,
                               progress=False, workers=1, overwrite=True)
    with pytest.raises(ValueError, match="other store contents"):
        train(config((train_copy, stores[1]), out, epochs=2))


def test_a_state_saved_before_a_recipe_key_was_recorded_still_resumes(stores, tmp_path):
    out = tmp_path / "run"
    train(config(stores, out, epochs=2, epochs_per_call=1))
    state = torch.load(out / TRAINING_STATE, weights_only=True)
    del state["store_recipes"]["init_sha256"]
    for recipe in state["store_recipes"]["train"] + state["store_recipes"]["val"]:
        recipe.pop("dtype"), recipe.pop("warp", None)
    torch.save(state, out / TRAINING_STATE)
    train(config(stores, out, epochs=2))
    assert read_training_state(out)["epoch"] == 1


def test_a_rewritten_init_checkpoint_is_not_resumed_on(stores, tmp_path):
    from pathlib import Path
    first = train(config(stores, tmp_path / "s1", epochs=1, max_steps=1))
    out = tmp_path / "s2"
    train(config(stores, out, epochs=2, epochs_per_call=1, init=Path(first)))
    train(config(stores, tmp_path / "s1", epochs=1, max_steps=2, resume=False))
    with pytest.raises(ValueError, match="other init checkpoint contents"):
        train(config(stores, out, epochs=2, init=str(first)))


def test_the_validation_store_may_not_be_a_training_store(stores, tmp_path):
    import dataclasses
    import shutil
    with pytest.raises(ValueError, match="is one of the training stores"):
        train(dataclasses.replace(config(stores, tmp_path / "a", epochs=1), val=str(stores[0])))
    shutil.copytree(stores[0], tmp_path / "copy.zarr")
    with pytest.raises(ValueError, match="built from the same recipe as a training store"):
        train(dataclasses.replace(config(stores, tmp_path / "b", epochs=1),
                                  val=str(tmp_path / "copy.zarr")))
    # the same draws stored in float64 are the same samples
    same = mistgen.build_meta_dataset(tmp_path / "f64.zarr", specs=["normal-dense-base",
                                      "student-sparse-asinh"], count=24, n_range=(10, 40),
                                      dim_range=(1, 3), dim_y_range=(1, 2), seed=0,
                                      shard_size=8, progress=False, workers=1, dtype="float64")
    with pytest.raises(ValueError, match="built from the same recipe as a training store"):
        train(dataclasses.replace(config(stores, tmp_path / "c", epochs=1), val=str(same.path)))


@pytest.mark.parametrize("bad, message", [
    ({"swap_xy": "no"}, "swap_xy must be true or false"),
    ({"resume": 1}, "resume must be true or false"),
    ({"seed": -1}, "seed must be a whole number"), ({"seed": True}, "seed must be a whole"),
    ({"seed": 2**70}, "seed must be a whole"), ({"seed": "3"}, "seed must be a whole"),
    ({"init": 5}, "init must be a checkpoint path"),
])
def test_switches_seed_and_init_are_checked_when_the_config_is_made(stores, tmp_path, bad,
                                                                     message):
    import dataclasses
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(config(stores, tmp_path / "run", epochs=1), **bad)
    assert not (tmp_path / "run").exists()


def test_training_leaves_the_matplotlib_backend_and_honours_the_umask(stores, tmp_path):
    import os

    import matplotlib
    before = matplotlib.get_backend()
    old = os.umask(0o077)
    try:
        path = train(config(stores, tmp_path / "run", epochs=1, variant="mist"))
    finally:
        os.umask(old)
    assert matplotlib.get_backend() == before
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert (tmp_path / "run" / "curves.png").stat().st_mode & 0o777 == 0o600


def test_an_interrupted_epoch_is_run_again_whole(stores, tmp_path, monkeypatch):
    # a run killed while writing its second epoch's checkpoint: on resume that epoch runs
    # again, and the checkpoint is that of an uninterrupted run
    import dataclasses
    import mistmodel.training as training_module

    def run(out):
        return train(dataclasses.replace(config(stores, out, epochs=2, variant="mist"),
                                         val=None))      # a checkpoint every epoch

    straight = run(tmp_path / "straight")
    real, calls = training_module.save_checkpoint, []

    def dies_at_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(training_module, "save_checkpoint", dies_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut")
    monkeypatch.setattr(training_module, "save_checkpoint", real)
    resumed = run(tmp_path / "cut")
    assert states_equal(load_checkpoint(resumed)[0], load_checkpoint(straight)[0])
    assert read_card(resumed)["epoch"] == 1


def test_the_n_bins_hold_every_sample_size():
    """Samples above n = 500 fell in no bin: mse_by_n left them out without a word."""
    from mistmodel.training import N_BINS

    for n in (10, 99, 100, 299, 300, 500, 501, 2998, 100_000):
        assert sum(lo <= n < hi for lo, hi in N_BINS.values()) == 1, n


def test_a_refused_init_leaves_no_output_folder(stores, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError):
        train(config(stores, out, epochs=1, init=str(tmp_path / "missing.safetensors")))
    assert not out.exists()


def test_a_diverging_run_is_one_line_and_status_2_on_the_command_line(stores, tmp_path,
                                                                       capsys):
    from mistmodel.train import main

    code = main(["--train", str(stores[0]), "--val", str(stores[1]),
                 "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8",
                 "--threads", "1", "--no-progress", "--model", "width=8",
                 "--model", "summary_width=16", "--lr", "1e30"])
    assert code == 2
    assert "the run diverged; lower the learning rate" in capsys.readouterr().err
