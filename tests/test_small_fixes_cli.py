"""The ``mist`` command line: ``--neighbours`` checked before the data is read, and .npy
files of extended-precision or complex numbers."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mistmodel import cli
from mistmodel.cli import main

LONGDOUBLE = np.dtype(np.longdouble)
wide_longdouble = pytest.mark.skipif(LONGDOUBLE.itemsize <= 8,
                                     reason="longdouble is float64 on this platform")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("mist: error:")]


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(80)
    z = rng.standard_normal(80)
    y = x + z + rng.standard_normal(80)
    path = tmp_path / "xyz.csv"
    path.write_text("x,y,z\n" + "\n".join(f"{a:.6f},{b:.6f},{c:.6f}"
                                          for a, b, c in zip(x, y, z)) + "\n")
    return path


# ------------------------------------------------------------------ --neighbours
@pytest.mark.parametrize("value", ["0", "1", "-3"])
def test_bad_neighbours_is_refused_before_the_file_is_opened(tmp_path, capsys, value):
    missing = tmp_path / "not-there.csv"
    code, _, err = run(capsys, "test", missing, "--x", "x", "--y", "y", "--z", "z",
                       f"--neighbours={value}", "--estimator", "ksg")
    assert code == 2
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "--neighbours must be >= 2" in lines[0] and f"got {value}" in lines[0], err


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_neighbours_reads_no_data(table, capsys, monkeypatch, value):
    def no_reading(*args, **kwargs):
        raise AssertionError("the data file was opened")

    monkeypatch.setattr(cli, "open_table", no_reading)
    code, _, err = run(capsys, "test", table, "--x", "x", "--y", "y", "--z", "z",
                       f"--neighbours={value}", "--estimator", "ksg")
    assert code == 2 and "--neighbours must be >= 2" in err, err
    assert "AssertionError" not in err


@pytest.mark.parametrize("value", ["2.5", "three"])
def test_non_integer_neighbours_is_refused_by_the_parser(table, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["test", str(table), "--x", "x", "--y", "y", "--z", "z", "--neighbours", value,
              "--estimator", "ksg"])
    assert exit_.value.code == 2
    assert "--neighbours: invalid int value" in capsys.readouterr().err


def test_good_neighbours_still_runs(table, capsys):
    code, out, err = run(capsys, "test", table, "--x", "x", "--y", "y", "--z", "z",
                         "--neighbours", 3, "--estimator", "ksg", "--permutations", 9,
                         "--json")
    assert code == 0, err
    assert "within 3 Z-neighbours" in json.loads(out)["notes"][0]


# ------------------------------------------------------------------ .npy dtypes
def sample(n: int = 60) -> np.ndarray:
    rng = np.random.default_rng(2)
    x = rng.standard_normal(n)
    return np.column_stack([x, x + rng.standard_normal(n)])


@wide_longdouble
def test_extended_precision_that_float64_would_round_is_refused(tmp_path, capsys):
    wide = sample().astype(np.longdouble)
    wide[7, 1] += np.longdouble(2) ** -60          # below float64's precision at this value
    path = tmp_path / "wide.npy"
    np.save(path, wide)
    code, _, err = run(capsys, "estimate", path, "--estimator", "cca")
    assert code == 2, err
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] and str(LONGDOUBLE) in lines[0], err
    assert "column 1" in lines[0] and "data row 7" in lines[0], err
    assert "float64" in lines[0] and "astype(np.float64)" in lines[0], err


@wide_longdouble
def test_extended_precision_beyond_float64s_range_is_refused_as_such(tmp_path, capsys):
    wide = sample().astype(np.longdouble)
    wide[3, 0] = np.longdouble("1e400")
    path = tmp_path / "huge.npy"
    np.save(path, wide)
    code, _, err = run(capsys, "estimate", path, "--estimator", "cca")
    assert code == 2, err
    assert str(LONGDOUBLE) in err and "1e+400" in err and "rounds to inf" in err, err
    assert "warning" not in err, err


@wide_longdouble
def test_extended_precision_holding_float64_values_gives_the_float64_estimate(tmp_path, capsys):
    plain = sample()
    np.save(tmp_path / "plain.npy", plain)
    np.save(tmp_path / "wide.npy", plain.astype(np.longdouble))
    results = []
    for name in ("plain.npy", "wide.npy"):
        code, out, err = run(capsys, "estimate", tmp_path / name, "--estimator", "cca",
                             "--json")
        assert code == 0, err
        results.append(json.loads(out)["estimate"])
    assert results[0] == results[1]


@wide_longdouble
def test_extended_precision_nan_is_reported_as_a_nan(tmp_path, capsys):
    wide = sample().astype(np.longdouble)
    wide[4, 0] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, wide)
    code, _, err = run(capsys, "estimate", path, "--estimator", "cca")
    assert code == 2 and "column 0 contains NaN" in err and "first at data row 4" in err, err


def test_complex_npy_is_refused_naming_the_file_and_dtype(tmp_path, capsys):
    path = tmp_path / "complex.npy"
    np.save(path, sample() + 1j)
    code, _, err = run(capsys, "estimate", path, "--estimator", "cca")
    assert code == 2, err
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert str(path) in lines[0] and "complex values (dtype complex128)" in lines[0], err


def test_float32_npy_is_still_read(tmp_path, capsys):
    path = tmp_path / "single.npy"
    np.save(path, sample().astype(np.float32))
    code, out, err = run(capsys, "estimate", path, "--estimator", "cca", "--json")
    assert code == 0, err
    assert np.isfinite(json.loads(out)["estimate"])


@pytest.mark.parametrize("command", [["estimate"], ["test", "--permutations", "19"]])
def test_columns_of_a_repeated_header_name_are_told_apart_in_json(tmp_path, capsys, command):
    rng = np.random.default_rng(3)
    path = tmp_path / "dup.csv"
    path.write_text("a,a,b\n" + "\n".join(",".join(f"{v:.6f}" for v in row)
                                          for row in rng.standard_normal((80, 3))) + "\n")
    assert main([command[0], str(path), "--x", "0", "--y", "1", "--json", *command[1:]]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["x_columns"], out["y_columns"]) == (["a[0]"], ["a[1]"])
