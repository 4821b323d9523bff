"""Modality data: reading .npy/.csv, column selection, and clear errors for bad data."""
import hashlib
import json

import numpy as np
import pytest

import mistgen
from mistgen.modality import (
    EXAMPLES_DIR, Modality, ModalityError, build_modality_base, check_store_dims,
    example_modality, example_modalities, load_modality, modality_from_config,
)


def table(rows=200, cols=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.gamma(2.0, size=(rows, cols)) + rng.standard_normal((rows, cols))


def write_csv(path, values, header=None):
    lines = [",".join(header)] if header else []
    lines += [",".join(repr(float(v)) for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_shipped_example():
    assert "breast_cancer" in example_modalities()
    m = example_modality("breast_cancer")
    assert isinstance(m, Modality)
    assert (m.rows, m.dim_x, m.dim_y) == (569, 2, 2)
    assert m.x_names == ("mean texture", "mean area")
    assert m.y_names == ("mean smoothness", "mean compactness")
    data = np.load(EXAMPLES_DIR / "breast_cancer.npy")
    np.testing.assert_array_equal(np.hstack([m.x, m.y]), data)
    assert m.sha256 == hashlib.sha256((EXAMPLES_DIR / "breast_cancer.npy").read_bytes()).hexdigest()
    meta = json.loads((EXAMPLES_DIR / "breast_cancer.json").read_text())
    assert "scikit-learn" in meta["source"] and meta["rows"] == 569
    assert (EXAMPLES_DIR / "breast_cancer.npy").stat().st_size < 32_000


def test_example_matches_sklearn():
    from sklearn import datasets
    bunch = datasets.load_breast_cancer()
    names = list(bunch.feature_names)
    m = example_modality()
    cols = [names.index(c) for c in m.x_names + m.y_names]
    np.testing.assert_array_equal(np.hstack([m.x, m.y]), bunch.data[:, cols])


def test_npy_columns(tmp_path):
    t = table()
    np.save(tmp_path / "d.npy", t)
    m = load_modality(tmp_path / "d.npy", [3], [0, 2], name="demo")
    assert m.name == "demo" and (m.dim_x, m.dim_y, m.rows) == (1, 2, 200)
    np.testing.assert_array_equal(m.x, t[:, [3]])
    np.testing.assert_array_equal(m.y, t[:, [0, 2]])
    d = m.describe()
    assert d["x_columns"] == [3] and d["y_columns"] == [0, 2] and d["rows"] == 200
    np.save(tmp_path / "one.npy", t[:, 0])  # 1-D: one column
    with pytest.raises(ModalityError, match="out of range"):
        load_modality(tmp_path / "one.npy", [0], [1])


def test_csv_with_and_without_header(tmp_path):
    t = table()
    write_csv(tmp_path / "h.csv", t, header=["a", "b", "c", "d"])
    m = load_modality(tmp_path / "h.csv", ["a", "b"], ["d"])
    np.testing.assert_allclose(m.x, t[:, :2], rtol=0, atol=0)
    assert m.x_names == ("a", "b") and m.y_names == ("d",)
    m2 = load_modality(tmp_path / "h.csv", [0, 1], [3])
    np.testing.assert_array_equal(m2.y, m.y)
    write_csv(tmp_path / "n.csv", t)
    m3 = load_modality(tmp_path / "n.csv", [0, 1], [2, 3])
    np.testing.assert_array_equal(m3.y, t[:, 2:])
    with pytest.raises(ModalityError, match="no header"):
        load_modality(tmp_path / "n.csv", ["a"], [1])
    with pytest.raises(ModalityError, match="no column named 'z'"):
        load_modality(tmp_path / "h.csv", ["z"], [1])


@pytest.mark.parametrize("bad, match", [
    ("nan", "NaN or inf"), ("inf", "NaN or inf"), ("few", "at least 100"),
    ("constant", "constant"), ("discrete", "distinct values"),
])
def test_bad_values(tmp_path, bad, match):
    t = table()
    if bad == "nan":
        t[17, 1] = np.nan
    elif bad == "inf":
        t[3, 2] = -np.inf
    elif bad == "few":
        t = t[:40]
    elif bad == "constant":
        t[:, 2] = 4.5
    elif bad == "discrete":
        t[:, 3] = np.arange(t.shape[0]) % 3
    np.save(tmp_path / "d.npy", t)
    with pytest.raises(ModalityError, match=match):
        load_modality(tmp_path / "d.npy", [0, 1], [2, 3])


def test_bad_value_messages_name_the_problem(tmp_path):
    t = table()
    t[17, 1] = np.nan
    np.save(tmp_path / "d.npy", t)
    with pytest.raises(ModalityError) as info:
        load_modality(tmp_path / "d.npy", [0, 1], [2, 3])
    assert "[17]" in str(info.value) and "columns ['1']" in str(info.value)
    t = table()
    t[:, 2] = 1.0
    np.save(tmp_path / "c.npy", t)
    with pytest.raises(ModalityError, match="column 2 is constant"):
        load_modality(tmp_path / "c.npy", [0, 1], [2, 3])
    # an unused bad column is fine
    m = load_modality(tmp_path / "c.npy", [0, 1], [3])
    assert m.dim_y == 1
    # thresholds are settable
    np.save(tmp_path / "s.npy", table(rows=60))
    assert load_modality(tmp_path / "s.npy", [0], [1], min_rows=50).rows == 60


@pytest.mark.parametrize("xc, yc, match", [
    ([0, 4], [1], "out of range"), ([0, 1], [1, 2], "share column"), ([], [1], "non-empty"),
    ([0, 0], [1], "twice"), ([0.5], [1], "integers or names"), ("0", [1], "non-empty list"),
    ([True], [1], "integers or names"),
])
def test_bad_columns(tmp_path, xc, yc, match):
    np.save(tmp_path / "d.npy", table())
    with pytest.raises(ModalityError, match=match):
        load_modality(tmp_path / "d.npy", xc, yc)


def test_bad_files(tmp_path):
    with pytest.raises(ModalityError, match="does not exist"):
        load_modality(tmp_path / "missing.npy", [0], [1])
    (tmp_path / "d.parquet").write_text("x")
    with pytest.raises(ModalityError, match="unsupported type"):
        load_modality(tmp_path / "d.parquet", [0], [1])
    np.save(tmp_path / "cube.npy", np.zeros((10, 2, 2)))
    with pytest.raises(ModalityError, match="2-D"):
        load_modality(tmp_path / "cube.npy", [0], [1])
    np.save(tmp_path / "text.npy", np.array([["a", "b"]] * 200))
    with pytest.raises(ModalityError, match="numeric"):
        load_modality(tmp_path / "text.npy", [0], [1])
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    with pytest.raises(ModalityError, match="cannot read"):
        load_modality(tmp_path / "garbage.npy", [0], [1])
    (tmp_path / "empty.csv").write_text("\n")
    with pytest.raises(ModalityError, match="empty"):
        load_modality(tmp_path / "empty.csv", [0], [1])
    write_csv(tmp_path / "ragged.csv", table(rows=120, cols=3))
    with open(tmp_path / "ragged.csv", "a") as fh:
        fh.write("1.0,2.0\n")
    with pytest.raises(ModalityError, match="line 121 has 2 fields, expected 3"):
        load_modality(tmp_path / "ragged.csv", [0], [1])
    write_csv(tmp_path / "word.csv", table(rows=120, cols=2), header=["a", "b"])
    with open(tmp_path / "word.csv", "a") as fh:
        fh.write("1.0,oops\n")
    with pytest.raises(ModalityError, match="'oops' is not a number"):
        load_modality(tmp_path / "word.csv", [0], [1])


def test_from_config(tmp_path):
    np.save(tmp_path / "d.npy", table())
    entry = {"path": "d.npy", "x_columns": [0, 1], "y_columns": [2, 3],
             "flow": {"num_layers": 3}}
    m = modality_from_config("demo", entry, base_dir=tmp_path)
    assert m.name == "demo" and m.flow == {"num_layers": 3} and (m.dim_x, m.dim_y) == (2, 2)
    with pytest.raises(ModalityError, match="unknown key"):
        modality_from_config("demo", {**entry, "colums": [1]}, base_dir=tmp_path)
    with pytest.raises(ModalityError, match="missing required key"):
        modality_from_config("demo", {"path": "d.npy"}, base_dir=tmp_path)
    with pytest.raises(ModalityError, match="must be a mapping"):
        modality_from_config("demo", ["d.npy"], base_dir=tmp_path)
    with pytest.raises(ModalityError, match="does not exist"):
        modality_from_config("demo", entry, base_dir=tmp_path / "elsewhere")


def test_base_store_has_modality_dims(tmp_path):
    np.save(tmp_path / "d.npy", table(cols=5))
    m = load_modality(tmp_path / "d.npy", [0, 1, 2], [3, 4])
    ds = build_modality_base(tmp_path / "base.zarr", m,
                             ["normal-dense-base", "student-sparse-asinh"], 12, n_range=(10, 30),
                             shard_size=5, workers=1, progress=False)
    assert set(ds.index["dim_x"].values) == {3} and set(ds.index["dim_y"].values) == {2}
    check_store_dims(ds, m)
    with pytest.raises(ModalityError, match="fixes the dims"):
        build_modality_base(tmp_path / "b2.zarr", m, ["normal-dense-base"], 4, dim_range=(2, 3))
    other = mistgen.build_meta_dataset(tmp_path / "other.zarr", ["normal-dense-base"], 6,
                                       n_range=(10, 20), dim_range=(2, 4), shard_size=3,
                                       workers=1, progress=False)
    with pytest.raises(ModalityError, match="do not have the dims"):
        check_store_dims(other, m)


@pytest.mark.parametrize("first", ["0.5,,1.2,3.4", "0.5,NA,1.2,3.4"])
def test_a_missing_value_in_a_headerless_first_row_is_named_not_taken_for_names(tmp_path, first):
    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in r) for r in rng.standard_normal((300, 4))]
    path = tmp_path / "d.csv"
    path.write_text(first + "\n" + "\n".join(rows) + "\n")
    with pytest.raises(ModalityError, match="line 1, column 1"):
        load_modality(path, [0, 1], [2, 3])


def test_a_byte_order_mark_is_no_part_of_a_column_name(tmp_path):
    rng = np.random.default_rng(0)
    rows = [",".join(f"{v:.4f}" for v in r) for r in rng.standard_normal((300, 4))]
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,d\n" + "\n".join(rows) + "\n", encoding="utf-8-sig")
    assert load_modality(path, ["a", "b"], ["c", "d"]).x_names == ("a", "b")


def test_an_id_column_and_one_float32_cannot_resolve_are_warned_of_by_name(tmp_path):
    import warnings

    from mistgen.modality import ModalityWarning, load_modality
    rng = np.random.default_rng(0)
    table = np.c_[100000 + np.arange(300), rng.standard_normal(300),
                  7 + 1e-9 * rng.standard_normal(300), rng.standard_normal(300)]
    np.save(tmp_path / "m.npy", table)
    with pytest.warns(ModalityWarning) as caught:
        load_modality(tmp_path / "m.npy", [0, 1], [2, 3], name="clinic")
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and all(w.filename == __file__ for w in caught)
    assert "column 0 counts up by 1" in messages[0]
    assert "column 2 spreads" in messages[1] and "float64" in messages[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModalityWarning)
        load_modality(tmp_path / "m.npy", [1], [3], name="clean")
