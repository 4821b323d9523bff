"""Estimates of this tree against another checkout's, on the paper's grid (a benchmark, not a test).

    python benchmarks/compare_release.py --release-path PATH [--root /tmp/mist_eval]

``PATH`` is a checkout of an earlier release whose ``mistmodel`` still loads its own shipped
checkpoints with ``MIST.load(variant=...)`` (e.g. ``git worktree add PATH 5137ba3``, with its
compiled parts built in place).  The release's checkpoints are converted to safetensors
(``python -m mistmodel.checkpoint convert``), so both sides use the same weights.  Both
sides estimate every datapoint of the paper-grid test stores of ``benchmarks/eval_mist.py``
(built there; 2 x 2,340 values: the point and the quantile variant) twice: each sample
alone, and all samples in one ``estimate_batch`` call (padded chunks, whose float32 sums
depend on what a sample is batched with).  The release runs in its own subprocess
(``PYTHONPATH=PATH``), once by its default path (its compiled kernels) and once by its own
torch path (``MIST_NO_KERNELS=1``, fused ops off); this tree runs the ``torch`` backend.

Printed: how many values differ by more than 1e-5 nats (and by more than max(1e-5, 1e-6 x
value)), and the largest difference, for this tree against the release (alone, batched) and
for each side against itself (alone against batched).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

VARIANTS = ("mist", "mist_qr")

WORKER = """
import sys, warnings
import numpy as np
warnings.simplefilter("ignore")
if sys.argv[3] == "plain":          # the release's own torch path: no kernels, no fused ops
    import mistmodel.fused
    mistmodel.fused._state["op"] = None
from mistmodel.mist import MIST
data = np.load(sys.argv[1])
samples = [(data[f"x{i}"], data[f"y{i}"]) for i in range(int(data["count"]))]
out = {}
for variant in ("mist", "mist_qr"):
    m = MIST.load(variant=variant)
    out[variant + "_alone"] = np.array([m.estimate_batch([s])[0] for s in samples])
    out[variant + "_batched"] = np.asarray(m.estimate_batch(samples))
np.savez(sys.argv[2], **out)
"""


def grid_samples(root: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    import mistgen
    samples = []
    for split in ("test_id", "test_ood"):
        path = root / f"{split}.zarr"
        if not path.exists():
            raise SystemExit(f"{path} is missing: build it with python benchmarks/eval_mist.py "
                             f"--root {root} --no-ksg")
        for shard in mistgen.open_meta_dataset(path).iter_shards():
            samples += [(s.x, s.y) for s in shard]
    return samples


def this_tree(samples, checkpoints: dict[str, Path]) -> dict[str, np.ndarray]:
    from mistmodel import MIST
    out = {}
    for variant in VARIANTS:
        m = MIST.load(checkpoints[variant], backend="torch")
        out[variant + "_alone"] = np.array([m.estimate_batch([s])[0] for s in samples])
        out[variant + "_batched"] = np.asarray(m.estimate_batch(samples))
    return out


def release(samples, release_path: Path, work: Path, path: str) -> dict[str, np.ndarray]:
    """The release's estimates by its default path (``"default"``: its compiled kernels where
    they run) or its own torch path (``"plain"``)."""
    data = work / "grid.npz"
    if not data.exists():
        arrays = {f"x{i}": x for i, (x, _) in enumerate(samples)}
        arrays |= {f"y{i}": y for i, (_, y) in enumerate(samples)}
        np.savez(data, count=len(samples), **arrays)
    env = {**os.environ, "PYTHONPATH": str(release_path)}
    if path == "plain":
        env["MIST_NO_KERNELS"] = "1"
    out = work / f"release_{path}.npz"
    subprocess.run([sys.executable, "-c", WORKER, str(data), str(out), path],
                   env=env, cwd=str(release_path), check=True)
    return dict(np.load(out))


def line(name: str, a: np.ndarray, b: np.ndarray) -> str:
    diff = np.abs(a - b)
    worst = int(np.argmax(diff))
    return (f"| {name} | {int((diff > 1e-5).sum())} / {diff.size} | "
            f"{int((diff > np.maximum(1e-5, 1e-6 * np.abs(b))).sum())} | "
            f"{diff.max():.2e} (at {b[worst]:.2f} nats) |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--release-path", required=True, type=Path)
    ap.add_argument("--root", default="/tmp/mist_eval", type=Path,
                    help="where eval_mist.py built the paper-grid test stores")
    args = ap.parse_args()
    release_path = args.release_path.resolve()
    samples = grid_samples(args.root)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        checkpoints = {}
        for variant in VARIANTS:
            checkpoints[variant] = work / f"{variant}.safetensors"
            subprocess.run([sys.executable, "-m", "mistmodel.checkpoint", "convert",
                            str(release_path / "mistmodel" / "checkpoints" / f"{variant}.pt"),
                            str(checkpoints[variant])], check=True, capture_output=True)
        ours = this_tree(samples, checkpoints)
        theirs = release(samples, release_path, work, "default")
        plain = release(samples, release_path, work, "plain")
    both = lambda d, how: np.concatenate([d[f"{v}_{how}"] for v in VARIANTS])  # noqa: E731
    print(f"{len(samples)} paper-grid samples x {len(VARIANTS)} variants; release {release_path}\n")
    print("| comparison | beyond 1e-5 nats | beyond max(1e-5, 1e-6 x value) | largest difference |")
    print("|---|---|---|---|")
    print(line("this tree vs release, each sample alone", both(ours, "alone"), both(theirs, "alone")))
    print(line("this tree vs release, batched", both(ours, "batched"), both(theirs, "batched")))
    print(line("this tree vs the release's own torch path, alone", both(ours, "alone"),
               both(plain, "alone")))
    print(line("release: its torch path vs its kernels, alone", both(plain, "alone"),
               both(theirs, "alone")))
    print(line("release alone vs release batched", both(theirs, "alone"), both(theirs, "batched")))
    print(line("release's torch path: alone vs batched", both(plain, "alone"),
               both(plain, "batched")))
    print(line("this tree alone vs this tree batched", both(ours, "alone"), both(ours, "batched")))


if __name__ == "__main__":
    main()
