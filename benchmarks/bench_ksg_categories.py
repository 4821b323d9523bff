"""What KSG(discrete="auto") costs on discrete columns: this checkout against another.

    python benchmarks/bench_ksg_categories.py --before PATH [--repeats 3]

``PATH`` is a checkout of another commit (``git worktree add PATH COMMIT``). Each side runs
in its own subprocess with its own checkout first on ``sys.path`` (so that its peak memory
is its own) and times ``KSG(discrete="auto").estimate`` (best of ``--repeats`` calls after
one warm-up call) on samples of 2,000, 10,000 and 100,000 rows: X and Y each on 5 labels
(every column discrete), X on 5 labels against Y = (5 labels, a normal column), and
X = (5 labels, a normal column) against the same. Prints seconds per estimate, the ratio
and each subprocess's peak RSS; the estimates themselves are printed side by side, since
where a rule changed between the commits they differ.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = [("5 x 5 labels", 2000), ("5 x 5 labels", 10000), ("5 x 5 labels", 100000),
         ("5 labels vs (5 labels, normal)", 2000), ("5 labels vs (5 labels, normal)", 10000),
         ("(5 labels, normal) vs (5 labels, normal)", 2000),
         ("(5 labels, normal) vs (5 labels, normal)", 10000)]

CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
from mistmodel.estimators import KSG
repeats, cases = json.loads(sys.argv[1])
warnings.simplefilter("ignore")
out = []
for label, n in cases:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5, (n, 2)) * 1.0, rng.standard_normal((n, 2))
    x = a[:, :1] if label.startswith("5 ") else np.column_stack([a[:, 0], b[:, 0]])
    y = a[:, 1:] if label == "5 x 5 labels" else np.column_stack([a[:, 1], b[:, 1]])
    est = KSG(discrete="auto")
    value = est.estimate(x, y)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        est.estimate(x, y)
        times.append(time.perf_counter() - start)
    out.append({"seconds": min(times), "value": value})
print(json.dumps({"cases": out,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(checkout: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps([repeats, CASES])],
                          capture_output=True, text=True, env=env, check=True, cwd=checkout)
    return json.loads(done.stdout)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="checkout of another commit")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if not (args.before / "mistmodel" / "estimators" / "ksg.py").is_file():
        ap.error(f"--before {args.before}: not a checkout of this project")
    now, before = run(ROOT, args.repeats), run(args.before.resolve(), args.repeats)
    print(f"`python benchmarks/bench_ksg_categories.py --before {args.before} --repeats "
          f"{args.repeats}` (load average {os.getloadavg()[0]:.2f})\n")
    print("| sample | n | seconds: this / before (ratio) | estimate: this / before |")
    print("|---|---|---|---|")
    for (label, n), a, b in zip(CASES, now["cases"], before["cases"]):
        print(f"| {label} | {n:,} | {a['seconds']:.3f} / {b['seconds']:.3f} "
              f"({a['seconds'] / b['seconds']:.2f}x) | {a['value']:.4f} / {b['value']:.4f} |")
    print(f"\npeak RSS: {now['peak_mib']:.0f} MiB this checkout, {before['peak_mib']:.0f} MiB "
          f"before ({now['peak_mib'] / before['peak_mib']:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
