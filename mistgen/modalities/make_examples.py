"""Rebuild the example modality files shipped in this folder from scikit-learn's bundled data.

    python -m mistgen.modalities.make_examples          # rewrites breast_cancer.{npy,json}

``breast_cancer``: the Breast Cancer Wisconsin (Diagnostic) data set as bundled with
scikit-learn (``sklearn.datasets.load_breast_cancer``, read from the package's own files,
no download): 569 fine-needle-aspirate images, 4 of the 30 cell-nucleus features kept,
values unchanged (float64). X = (mean texture, mean area), Y = (mean smoothness,
mean compactness): skewed, positive, correlated within each side.
Source: W. N. Street, W. H. Wolberg, O. L. Mangasarian, "Nuclear feature extraction for
breast tumor diagnosis", 1993; UCI Machine Learning Repository (CC BY 4.0).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

EXAMPLES = {
    "breast_cancer": {
        "loader": "load_breast_cancer",
        "features": ["mean texture", "mean area", "mean smoothness", "mean compactness"],
        "x_columns": [0, 1],
        "y_columns": [2, 3],
        "source": (
            "Breast Cancer Wisconsin (Diagnostic), W. N. Street, W. H. Wolberg and "
            "O. L. Mangasarian (1993), UCI Machine Learning Repository, CC BY 4.0; "
            "the copy bundled with scikit-learn (sklearn.datasets.load_breast_cancer)"
        ),
    },
}


def build(name: str, out_dir: Path = HERE) -> Path:
    import sklearn
    from sklearn import datasets

    spec = EXAMPLES[name]
    bunch = getattr(datasets, spec["loader"])()
    names = list(bunch.feature_names)
    idx = [names.index(f) for f in spec["features"]]
    table = np.ascontiguousarray(bunch.data[:, idx], dtype=np.float64)
    data_path = out_dir / f"{name}.npy"
    np.save(data_path, table)
    meta = {
        "file": data_path.name,
        "rows": int(table.shape[0]),
        "columns": spec["features"],
        "x_columns": spec["x_columns"],
        "y_columns": spec["y_columns"],
        "source": spec["source"],
        "derived_with": (f"scikit-learn {sklearn.__version__}: sklearn.datasets."
                         f"{spec['loader']}().data[:, {idx}] (feature indices), values "
                         "unchanged, float64"),
        "rebuild": "python -m mistgen.modalities.make_examples",
    }
    (out_dir / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    return data_path


def main() -> None:
    for name in EXAMPLES:
        print(build(name))


if __name__ == "__main__":
    main()
