"""Bad input to ``mist estimate``, as an attacker or a careless user would give it.

Every case must end in exit status 2 with one ``mist: error:`` line that names the
problem (file, flag, column by header name, value), or - where the input is legitimate
but easy to misread - in the answer the user asked for, with what was done stated.
The cases that need a network use the checkpoints shipped in the package.
"""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from mistmodel.cli import main


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((80, 3))
    y = x[:, :2] + 0.5 * rng.standard_normal((80, 2))
    return np.hstack([x, y])


def run(capsys, *argv):
    code = main(["estimate", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def csv(tmp_path, data, columns, name="d.csv"):
    path = tmp_path / name
    pd.DataFrame(data, columns=columns).to_csv(path, index=False)
    return path


def refused(code, err, *needles):
    """Exit 2, one error line, no traceback, and every needle in the message."""
    lines = [line for line in err.splitlines() if line.startswith("mist: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------ header rows
def test_numeric_header_over_decimals_is_refused_as_ambiguous(tmp_path, capsys, data):
    path = tmp_path / "d.csv"
    pd.DataFrame(data).to_csv(path, index=False)            # header row "0,1,2,3,4"
    code, _, err = run(capsys, path, "--x", "0", "--y", "3")
    refused(code, err, "first row", "whole numbers", "--header", "--no-header")


def test_numeric_header_read_as_names_with_header_flag(tmp_path, capsys, data):
    path = tmp_path / "d.csv"
    pd.DataFrame(data).to_csv(path, index=False)
    code, out, err = run(capsys, path, "--x", "0,1", "--y", "3", "--header", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["n"] == 80 and res["x_columns"] == ["0", "1"] and res["y_columns"] == ["3"]


def test_no_header_flag_reads_the_first_row_as_data(tmp_path, capsys, data):
    path = tmp_path / "d.csv"
    pd.DataFrame(data).to_csv(path, index=False)
    code, out, err = run(capsys, path, "--x", "0", "--y", "3", "--no-header", "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 81


def test_column_number_row_over_whole_numbers_is_data_with_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 9, size=(40, 3))
    path = tmp_path / "counts.csv"
    pd.DataFrame(counts).to_csv(path, index=False)           # "0,1,2" above integers
    code, out, err = run(capsys, path, "--x", "0", "--y", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 41
    assert err.count("HeaderWarning") == 1 and "--header" in err


def test_text_only_above_text_columns_is_refused_as_ambiguous(tmp_path, capsys):
    path = tmp_path / "pets.csv"
    path.write_text("cat,1.5,2.5\ndog,2.5,0.5\nemu,3.5,1.0\n")
    code, _, err = run(capsys, path, "--x", "1", "--y", "2")
    refused(code, err, "first row", "text only in columns that hold text", "--header")


def test_header_with_text_is_detected(tmp_path, capsys, data):
    code, out, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["n"] == 80


def test_byte_order_mark_does_not_rename_the_first_column(tmp_path, capsys, data):
    path = tmp_path / "bom.csv"
    pd.DataFrame(data, columns=list("abcuv")).to_csv(path, index=False, encoding="utf-8-sig")
    code, out, err = run(capsys, path, "--x", "a", "--y", "u", "--json")
    assert code == 0, err
    assert json.loads(out)["x_columns"] == ["a"]


# ------------------------------------------------------------------ names against indices
@pytest.fixture
def clash(tmp_path, data):
    return csv(tmp_path, data, ["a", "2", "1", "0", "v"])


def test_name_that_is_another_columns_index_is_refused(clash, capsys):
    code, _, err = run(capsys, clash, "--x", "0", "--y", "v")
    refused(code, err, "--x", "'0'", "ambiguous", "--by-name", "--by-index")


def test_by_name_and_by_index_resolve_the_clash(clash, capsys):
    code, out, err = run(capsys, clash, "--x", "0", "--y", "v", "--by-name", "--json")
    assert code == 0, err
    assert json.loads(out)["x_columns"] == ["0"]
    code, out, err = run(capsys, clash, "--x", "0", "--y", "4", "--by-index", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["x_columns"] == ["a"] and res["y_columns"] == ["v"]


def test_name_equal_to_its_own_index_is_not_a_clash(tmp_path, capsys, data):
    path = csv(tmp_path, data, ["0", "1", "2", "3", "4"])
    code, out, err = run(capsys, path, "--x", "0", "--y", "4", "--header", "--json")
    assert code == 0, err
    assert json.loads(out)["x_columns"] == ["0"]


@pytest.mark.parametrize("argv,needles", [
    (["--x", "u", "--y", "v", "--by-index"], ["'u'", "not a column index"]),
    (["--x", "0", "--y", "9", "--by-name"], ["no column named '0'"]),
    (["--x", "a:b", "--y", "v"], ["bad slice 'a:b'"]),
    (["--x", "3:1", "--y", "v"], ["slice '3:1' selects no columns"]),
    (["--x", "-9", "--y", "v"], ["index -9 out of range for 5 columns"]),
    (["--x", "a,", "--y", "v"], ["empty item"]),
])
def test_bad_items(tmp_path, capsys, data, argv, needles):
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), *argv)
    refused(code, err, *needles)


def test_by_name_without_a_header_is_refused(tmp_path, capsys, data):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, _, err = run(capsys, path, "--x", "0", "--y", "1", "--by-name")
    refused(code, err, "--by-name", "no header")


def test_duplicate_header_names_need_indices(tmp_path, capsys, data):
    path = tmp_path / "dup.csv"
    path.write_text("a,a,b\n" + "\n".join(",".join(map(str, r)) for r in data[:, :3]) + "\n")
    code, _, err = run(capsys, path, "--x", "a", "--y", "b")
    refused(code, err, "names 2 columns 'a'", "by index")


# ------------------------------------------------------------------ duplicates and overlap
@pytest.mark.parametrize("x,y,needles", [
    ("0,0", "u", ["--x selects column 'a' twice"]),
    ("a,0", "u", ["--x selects column 'a' twice"]),
    ("0:3,1", "u", ["--x selects column 'b' twice"]),
    ("a", "u,-2", ["--y selects column 'u' twice"]),
    ("a,b", "b,u", ["share columns 'b'"]),
])
def test_duplicate_and_shared_columns(tmp_path, capsys, data, x, y, needles):
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", x, "--y", y)
    refused(code, err, *needles)


# ------------------------------------------------------------------ checkpoints and flags
@pytest.mark.parametrize("flag", ["--checkpoint", "--qr-checkpoint"])
def test_missing_checkpoint_is_an_error(tmp_path, capsys, data, flag):
    missing = tmp_path / "nowhere.safetensors"
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                       flag, missing)
    refused(code, err, flag, str(missing), "no such file")


def test_directory_as_checkpoint_is_an_error(tmp_path, capsys, data):
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                       "--checkpoint", tmp_path)
    refused(code, err, "--checkpoint", "a directory")


class _Touch:
    """Unpickling this creates the file ``marker``: proof that loading ran code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_pickle_checkpoint_is_refused_without_running_it(tmp_path, capsys, data):
    import torch
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model_state": {}, "model_config": {}, "payload": _Touch(marker)}, evil)
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                       "--checkpoint", evil)
    refused(code, err, str(evil), "pickle")
    assert not marker.exists()


def test_level_beyond_the_shipped_quantile_grid_is_refused(tmp_path, capsys, data):
    code, out, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                         "--level", "0.999")
    refused(code, err, "level 0.999", "up to level 0.98")
    assert out == ""


@pytest.mark.parametrize("flag", ["--x", "--y", "--level", "--checkpoint", "--qr-checkpoint"])
def test_an_option_given_twice_is_refused(tmp_path, capsys, data, flag):
    values = {"--x": ["a", "b"], "--y": ["u", "v"], "--level": ["0.5", "0.8"],
              "--checkpoint": ["m1", "m2"], "--qr-checkpoint": ["q1", "q2"]}[flag]
    with pytest.raises(SystemExit) as stop:
        main(["estimate", str(csv(tmp_path, data, list("abcuv"))), flag, values[0],
              flag, values[1]])
    assert stop.value.code == 2
    assert f"{flag} given twice" in capsys.readouterr().err


@pytest.mark.parametrize("level", ["0", "1", "nan", "-0.5", "inf"])
def test_level_outside_zero_one(tmp_path, capsys, data, level):
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                       "--level", level)
    refused(code, err, "--level")


@pytest.mark.parametrize("flag", ["--header", "--no-header"])
def test_header_flags_on_a_npy_file(tmp_path, capsys, data, flag):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, _, err = run(capsys, path, "--x", "0", "--y", "1", flag)
    refused(code, err, flag, "csv files only")


@pytest.mark.parametrize("marker", ["NA", "N/A", "null", "-", "?"])
def test_a_missing_value_in_a_headerless_first_row_is_data(tmp_path, capsys, data, marker):
    path = tmp_path / "d.csv"
    rows = [",".join(f"{v:.6f}" for v in row) for row in data]
    rows[0] = ",".join([f"{data[0, 0]:.6f}", marker] + [f"{v:.6f}" for v in data[0, 2:]])
    path.write_text("\n".join(rows) + "\n")
    code, out, err = run(capsys, path, "--x", "0", "--y", "2", "--estimator", "cca", "--json")
    assert code == 0 and json.loads(out)["n"] == len(data), err
    code, _, err = run(capsys, path, "--x", "0", "--y", "1", "--estimator", "cca")
    refused(code, err, "column 1", "data row 0")


@pytest.mark.parametrize("argv, needles", [
    (["--estimator", "ksg", "--level", "0.5"], ["--level sets MIST-QR's interval",
                                                "--estimator ksg gives none"]),
    (["--estimator", "cca", "--no-cross-check"], ["--no-cross-check", "--estimator cca"]),
])
def test_flags_of_mist_alone_are_refused_with_other_estimators(tmp_path, capsys, data, argv,
                                                               needles):
    code, _, err = run(capsys, csv(tmp_path, data, list("abcuv")), "--x", "a", "--y", "u",
                       *argv)
    refused(code, err, *needles)


def test_negative_column_slices_and_lists_count_from_the_end(tmp_path, capsys, data):
    path = tmp_path / "d.npy"
    np.save(path, data)
    for y in ("-2:", "-2,-1", "3:5"):
        code, out, err = run(capsys, path, "--x", "0:2", "--y", y, "--estimator", "cca",
                             "--json")
        assert code == 0 and json.loads(out)["y_columns"] == ["3", "4"], (y, err)


# ------------------------------------------------------------------ files
def _write(tmp_path, problem, data):
    path = tmp_path / "d.csv"
    frame = pd.DataFrame(data, columns=list("abcuv"))
    if problem == "nan":
        frame.loc[7, "u"] = np.nan
    elif problem == "inf":
        frame.loc[3, "u"] = np.inf
    elif problem == "text":
        frame["u"] = frame["u"].astype(object)
        frame.loc[5, "u"] = "n/a?"
    elif problem == "header only":
        frame = frame.iloc[:0]
    elif problem == "semicolons":
        frame.to_csv(path, index=False, sep=";")
        return path
    elif problem == "ragged":                   # beyond the rows read to find the header
        pd.concat([frame] * 4).to_csv(path, index=False)
        with open(path, "a") as f:
            f.write("1,2,3,4,5,6,7\n")
        return path
    elif problem == "late short row":           # beyond the rows read to find the header
        pd.concat([frame] * 4).to_csv(path, index=False)
        with open(path, "a") as f:
            f.write("1,2,3,4\n")
        return path
    elif problem == "semicolons, decimal commas":
        path.write_text("a;b;c;u;v\n" + "".join(
            ";".join(f"{v:.3f}".replace(".", ",") for v in row) + "\n" for row in data))
        return path
    elif problem == "short row":
        frame.to_csv(path, index=False)
        lines = path.read_text().splitlines()
        lines[2] = "1,2"
        path.write_text("\n".join(lines) + "\n")
        return path
    elif problem == "latin-1":
        path.write_bytes("\xe9t\xe9,b\n1,2\n3,4\n".encode("latin-1"))
        return path
    elif problem == "empty":
        path.write_text("")
        return path
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("problem,needles", [
    ("nan", ["--y", "column 'u' contains NaN", "data row 7"]),
    ("inf", ["--y", "column 'u' contains inf", "data row 3"]),
    ("text", ["--y", "non-numeric column 'u'", "'n/a?'", "data row 5"]),
    ("header only", ["header row but no data rows"]),
    ("semicolons", ["comma-separated"]),
    ("ragged", ["d.csv: line 322 has 7 fields, the first line 5"]),
    ("late short row", ["d.csv: line 322 has 4 fields, the first line 5"]),
    ("semicolons, decimal commas", ["comma-separated", "';'"]),
    ("short row", ["line 3 has 2 fields, the first line 5"]),
    ("latin-1", ["could not read", "d.csv"]),
    ("empty", ["is empty"]),
])
def test_bad_csv_files(tmp_path, capsys, data, problem, needles):
    code, _, err = run(capsys, _write(tmp_path, problem, data), "--x", "a", "--y", "u")
    refused(code, err, *needles)


def test_nan_in_headerless_file_is_named_by_index(tmp_path, capsys, data):
    d = data.copy()
    d[4, 2] = np.nan
    path = tmp_path / "d.npy"
    np.save(path, d)
    code, _, err = run(capsys, path, "--x", "0", "--y", "2:4")
    refused(code, err, "--y: column 2 contains NaN", "data row 4")


@pytest.mark.parametrize("problem,needles", [
    ("pickle", ["could not read", "npy"]),
    ("1-d", ["1-D array"]),
    ("3-d", ["expected 2-D"]),
    ("strings", ["non-numeric"]),
    ("complex", ["complex"]),
    ("directory", ["is a directory"]),
    ("device", ["/dev/null", "not a regular file"]),
    ("suffix", ["unsupported file type '.txt'"]),
])
def test_bad_npy_and_paths(tmp_path, capsys, data, problem, needles):
    path = tmp_path / "d.npy"
    if problem == "pickle":
        np.save(path, np.array([[{"a": 1}, 2]], dtype=object), allow_pickle=True)
    elif problem == "1-d":
        np.save(path, data[:, 0])
    elif problem == "3-d":
        np.save(path, data.reshape(8, 10, 5))
    elif problem == "strings":
        np.save(path, data.astype(str))
    elif problem == "complex":
        np.save(path, data + 1j)
    elif problem == "directory":
        path = tmp_path / "folder.npy"
        path.mkdir()
    elif problem == "device":
        path = pathlib.Path("/dev/null")
    else:
        path = tmp_path / "d.txt"
        path.write_text("1,2\n3,4\n")
    code, _, err = run(capsys, path, "--x", "0", "--y", "1")
    refused(code, err, *needles)


def test_parquet_names_and_flags(tmp_path, capsys, data):
    path = tmp_path / "d.parquet"
    pd.DataFrame(data, columns=["a", "2", "1", "0", "v"]).to_parquet(path)
    code, _, err = run(capsys, path, "--x", "0", "--y", "v")
    refused(code, err, "ambiguous", "--by-name")
    code, _, err = run(capsys, path, "--x", "0", "--y", "v", "--no-header")
    refused(code, err, "--no-header", "csv files only")
    code, _, err = run(capsys, path, "--x", "a,zz", "--y", "v")
    refused(code, err, "no column named 'zz'", "a, 2, 1, 0, v")


# ------------------------------------------------------------------ speed: no torch on a typo
@pytest.mark.parametrize("argv,modules", [
    (["estimate", "missing.csv"], ["torch"]),
    (["estimate", "{csv}", "--x", "a", "--y", "uu"], ["torch"]),
    (["estimate", "{csv}", "--x", "0", "--y", "v", "--checkpoint", "gone.safetensors"],
     ["torch", "pandas"]),
    (["estimate", "{npy}", "--x", "0", "--y", "9"], ["torch", "pandas"]),
    (["estimate", "{clash}", "--x", "0", "--y", "v"], ["torch"]),
])
def test_typo_is_answered_without_importing_torch(tmp_path, data, argv, modules):
    files = {"csv": csv(tmp_path, data, list("abcuv")),
             "clash": csv(tmp_path, data, ["a", "2", "1", "0", "v"], name="clash.csv"),
             "npy": tmp_path / "d.npy"}
    np.save(files["npy"], data)
    argv = [a.format(**files) for a in argv]
    check = ("import sys\nfrom mistmodel.cli import main\ncode = main(sys.argv[1:])\n"
             f"loaded = [m for m in {modules!r} if m in sys.modules]\n"
             "print(code, loaded)\n")
    proc = subprocess.run([sys.executable, "-c", check, *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.stdout.strip() == "2 []", (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("mist: error:"), proc.stderr


def test_module_entry_point_answers_a_missing_file(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mistmodel.cli", "estimate", "missing.csv"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == "mist: error: no such file: missing.csv\n"


# ------------------------------------------------------------------ what the answer says
def test_each_warning_is_printed_once(tmp_path, capsys, data):
    path = tmp_path / "small.npy"
    np.save(path, data[:6])
    code, _, err = run(capsys, path, "--x", "0", "--y", "3")
    assert code == 0, err
    assert err.count("SmallSampleWarning") == 1, err


def test_dropped_constant_columns_are_reported_by_name(tmp_path, capsys, data):
    frame = pd.DataFrame(data, columns=list("abcuv"))
    frame["k"] = 2.5
    path = tmp_path / "const.csv"
    frame.to_csv(path, index=False)
    code, out, err = run(capsys, path, "--x", "a,k", "--y", "u", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["dropped_constant_columns"] == {"x": ["k"], "y": []}
    code, out, err = run(capsys, path, "--x", "a,k", "--y", "u")
    assert code == 0, err
    assert "constant X columns left out" in out and "'k'" in out
    code, out, _ = run(capsys, path, "--x", "a", "--y", "u", "--json")
    assert json.loads(out)["dropped_constant_columns"] == {"x": [], "y": []}


def test_constant_side_gives_zero_and_an_interval_containing_it(tmp_path, capsys, data):
    frame = pd.DataFrame(data, columns=list("abcuv"))
    frame["k"] = 2.5
    path = tmp_path / "const.csv"
    frame.to_csv(path, index=False)
    code, out, err = run(capsys, path, "--x", "k", "--y", "u,v", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["estimate"] == 0.0 and res["lower"] == 0.0 and res["upper"] == 0.0
    assert res["dropped_constant_columns"]["x"] == ["k"]
    assert any("every X column is constant" in note for note in res["notes"])
