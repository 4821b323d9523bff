"""Freed tensor memory stays in the process once MIST has run on CPU (glibc malloc)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mistmodel.heap import OPT_OUT_ENV, _mallopt

ROOT = Path(__file__).resolve().parents[1]
glibc = pytest.mark.skipif(_mallopt() is None, reason="the malloc thresholds are glibc's")

# 24 tensors of 4 MiB alive at once, then all freed: 96 MiB is more than glibc's own
# (adaptive) trim threshold can ever reach (64 MiB), so without retain_freed_memory it is
# usually given back to the kernel on every round (whether it can be depends on where
# small allocations happen to sit), and each round page-faults it in again.
PROBE = """
import json, resource, sys, numpy as np, torch
from mistmodel.heap import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
def step():
    held = [torch.empty(1 << 20).fill_(1.0) for _ in range(24)]
    del held
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
estimate = None
if len(sys.argv) > 2:
    from mistmodel import MIST
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 6))
    y = x[:, :4] + rng.standard_normal((300, 4))
    estimate = float(MIST.load().estimate(x, y))
print(json.dumps({"applied": applied, "faults": faults, "estimate": estimate}))
"""


def probe(mode: str, *extra: str, opt_out: bool = False) -> dict:
    env = dict(os.environ)
    env.pop(OPT_OUT_ENV, None)
    if opt_out:
        env[OPT_OUT_ENV] = "1"
    out = subprocess.run([sys.executable, "-c", PROBE, mode, *extra], env=env, cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@glibc
def test_retained_memory_is_not_faulted_in_again():
    kept = probe("retain")
    assert kept["applied"] is True
    assert kept["faults"] < 100            # against up to 24,576 per round otherwise


@glibc
def test_opt_out_leaves_malloc_alone_and_results_do_not_change():
    kept = probe("retain", "estimate")
    left = probe("retain", "estimate", opt_out=True)
    assert left["applied"] is False
    assert kept["estimate"] == left["estimate"]


def test_repeated_calls_agree():
    from mistmodel.heap import retain_freed_memory

    first = retain_freed_memory()
    assert retain_freed_memory() is first
