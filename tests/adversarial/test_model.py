"""The MIST estimator under attack or careless use: damaged or crafted checkpoint files,
extreme scales, levels beyond the trained quantiles, constant sides, threads.

Every case ends in a clear error that names the problem, or in the right answer with
what was done stated; none runs code from a file or answers silently wrong.  The cases
that need a network use the checkpoints shipped in the package.
"""
import json
import struct
import threading

import numpy as np
import pytest
import torch

from mistmodel import MIST
from mistmodel.checkpoint import CheckpointError
from mistmodel.mist import default_checkpoint


@pytest.fixture(scope="module")
def mist():
    return MIST.load()


@pytest.fixture(scope="module")
def qr():
    return MIST.load(variant="mist_qr")


@pytest.fixture(scope="module")
def sample():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 3))
    return x, x[:, :2] + 0.7 * rng.standard_normal((200, 2))


def test_a_truncated_checkpoint_names_the_file(tmp_path):
    whole = default_checkpoint("mist").read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        MIST.load(path)


def test_a_header_that_claims_more_than_the_file_holds_is_refused(tmp_path):
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 1 << 42]},
                         "__metadata__": {"mist_card": "{}"}}).encode()
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    with pytest.raises(CheckpointError, match="huge.safetensors"):
        MIST.load(path)


def test_a_directory_or_missing_path_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no MIST checkpoint"):
        MIST.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="absent.safetensors"):
        MIST.load(tmp_path / "absent.safetensors")


@pytest.mark.parametrize("scale", [1e-300, 1e-154, 1e-20, 1e20, 1e154, 1e300])
def test_the_estimate_does_not_depend_on_scale(mist, sample, scale):
    x, y = sample
    assert mist.estimate(x * scale, y / scale) == pytest.approx(mist.estimate(x, y), abs=1e-6)


@pytest.mark.parametrize("level", [0.99, 0.999999])
def test_levels_beyond_the_trained_quantiles_are_refused_not_clamped(qr, sample, level):
    with pytest.raises(ValueError, match="trained on tau in \\[0.01, 0.99\\].*up to level 0.98"):
        qr.interval(*sample, level=level)


def test_a_constant_side_has_estimate_and_interval_exactly_zero(mist, qr, sample):
    x, _ = sample
    const = np.full((len(x), 2), 7.0)
    assert mist.estimate(x, const) == 0.0
    record = qr.estimate_with_interval(x, const, level=0.9)
    assert (record.value, record.lower, record.upper) == (0.0, 0.0, 0.0)
    assert record.dropped_y == [0, 1] and record.contains_value


def test_a_constant_column_is_reported_not_silently_dropped(mist, sample):
    x, y = sample
    mist.estimate(x, np.column_stack([y, np.zeros(len(y))]))
    assert mist.last_info["dropped_y"] == [2]


def test_no_thread_state_leaks_into_a_fresh_thread(sample):
    counts = {}

    def first_torch_call_is_mist(key, threads):
        MIST.load(threads=threads).estimate(*sample)
        counts[key] = torch.get_num_threads()

    def plain(key):
        counts[key] = torch.get_num_threads()

    for target, args in ((plain, ("fresh",)), (first_torch_call_is_mist, ("default", None)),
                         (first_torch_call_is_mist, ("one", 1))):
        worker = threading.Thread(target=target, args=args)
        worker.start()
        worker.join()
    assert counts["default"] == counts["fresh"] and counts["one"] == counts["fresh"]
