"""Fit a MIST-QR checkpoint's split-conformal interval factors on calibration stores
(what rule ``calibrate`` calls); the result is a new checkpoint, the input is untouched."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

import mistgen
from mistmodel.calibration import fit_interval_calibration
from mistmodel.checkpoint import load_checkpoint, save_checkpoint
from mistmodel.mist import MIST
from mistmodel.training import open_stores, store_recipes


def calibrate_checkpoint(checkpoint: str | Path, stores: Sequence[str | Path],
                         dest: str | Path) -> dict:
    """Write ``checkpoint`` with the factors fitted on ``stores`` (its card's
    ``interval_calibration``) to ``dest``; returns the calibration record."""
    qr = MIST.load(checkpoint, device="cpu")
    if not qr.is_quantile:
        raise ValueError(f"{checkpoint} is not a mist_qr checkpoint; only MIST-QR is calibrated")
    samples, truth = [], []
    for path in stores:
        for shard in mistgen.open_meta_dataset(path).iter_shards():
            samples += [(s.x, s.y) for s in shard]
            truth += [s.mi for s in shard]
    calibration = fit_interval_calibration(qr, samples, np.array(truth))
    calibration["store_recipes"] = store_recipes(open_stores(list(stores)))
    state, card = load_checkpoint(checkpoint)
    save_checkpoint(dest, state, {**card, "interval_calibration": calibration})
    return calibration
