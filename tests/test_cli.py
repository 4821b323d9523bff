"""The ``mist estimate`` command line on small files."""
import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from mistmodel.caller_warnings import SmallSampleWarning
from mistmodel.checkpoint import save_checkpoint
from mistmodel.cli import main
from mistmodel.model import MISTNet, ModelConfig


def tiny_checkpoint(path, variant, shift=0.0):
    """A small untrained network; ``shift`` raises MIST-QR's lowest knot, so all its
    quantiles (the head's last parameter is the bias of the knot values)."""
    torch.manual_seed(0)
    cfg = ModelConfig(variant=variant, width=8, summary_width=16, pair_width=8, head_hidden=16)
    net = MISTNet(cfg)
    with torch.no_grad():
        list(net.head.parameters())[-1][0] += shift
    return save_checkpoint(path, net.state_dict(), {
        "variant": variant, "model_config": cfg.to_dict(),
        "data_ranges": {"n": [10, 500], "dim_x": [1, 32], "dim_y": [1, 32]}})


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    return {variant: tiny_checkpoint(root / f"{variant}.safetensors", variant)
            for variant in ("mist", "mist_qr")}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((120, 3))
    y = x[:, :2] + 0.5 * rng.standard_normal((120, 2))
    return np.hstack([x, y])


def run(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def flags(checkpoints):
    return ["--checkpoint", str(checkpoints["mist"]), "--qr-checkpoint", str(checkpoints["mist_qr"])]


def test_csv_with_names(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.csv"
    pd.DataFrame(data, columns=["a", "b", "c", "u", "v"]).to_csv(path, index=False)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "a,b,c", "--y", "u,v", "--json",
                                  *flags(checkpoints)])
    assert code == 0, err
    res = json.loads(out)
    assert res["x_columns"] == ["a", "b", "c"] and res["y_columns"] == ["u", "v"]
    assert res["n"] == 120 and res["lower"] <= res["upper"]
    assert np.isfinite(res["estimate"])


def test_npy_with_slices_matches_python_api(tmp_path, capsys, checkpoints, data):
    from mistmodel import MIST
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0:3", "--y", "3,-1",
                                  *flags(checkpoints)])
    assert code == 0, err
    assert "I(X;Y) =" in out and "90% interval" in out
    expected = MIST.load(checkpoints["mist"]).estimate(data[:, :3], data[:, 3:])
    assert f"{expected:.4f}" in out


def test_headerless_csv_and_level(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.csv"
    np.savetxt(path, data[:, [0, 3]], delimiter=",")
    code, out, err = run(capsys, ["estimate", str(path), "--level", "0.5", *flags(checkpoints)])
    assert code == 0, err
    assert "50% interval" in out and "n = 120" in out


@pytest.mark.parametrize("argv_tail,match", [
    (["--x", "a", "--y", "zz"], "no column named 'zz'"),
    (["--x", "a,b", "--y", "b"], "share columns"),
    (["--x", "0:9", "--y", "4"], None),
    (["--x", "a"], "choose them with --x and --y"),
    (["--x", "a", "--y", "7"], "out of range"),
    (["--x", "a", "--y", "b", "--level", "2"], "--level"),
])
def test_bad_flags(tmp_path, capsys, checkpoints, data, argv_tail, match):
    path = tmp_path / "d.csv"
    pd.DataFrame(data, columns=["a", "b", "c", "u", "v"]).to_csv(path, index=False)
    code, out, err = run(capsys, ["estimate", str(path), *argv_tail, *flags(checkpoints)])
    assert code == 2
    assert "mist: error:" in err
    if match:
        assert match in err


@pytest.mark.parametrize("problem,match", [
    ("nan", "contains NaN"), ("text", "non-numeric"), ("missing", "no such file"),
    ("suffix", "unsupported file type"), ("short", "at least 2 rows"),
])
def test_bad_files(tmp_path, capsys, checkpoints, data, problem, match):
    if problem == "nan":
        d = data.copy()
        d[7, 1] = np.nan
        path = tmp_path / "d.csv"
        pd.DataFrame(d, columns=list("abcuv")).to_csv(path, index=False)
    elif problem == "text":
        path = tmp_path / "d.csv"
        frame = pd.DataFrame(data, columns=list("abcuv"))
        frame["a"] = "word"
        frame.to_csv(path, index=False)
    elif problem == "missing":
        path = tmp_path / "absent.csv"
    elif problem == "suffix":
        path = tmp_path / "d.txt"
        path.write_text("1,2\n3,4\n")
    else:
        path = tmp_path / "d.npy"
        np.save(path, data[:1])
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  *flags(checkpoints)])
    assert code == 2 and match in err, err


def test_small_n_warns_on_stderr(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.npy"
    np.save(path, data[:6])
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "3",
                                  *flags(checkpoints)])
    assert code == 0
    assert "mist: warning (SmallSampleWarning)" in err and "n >= 10" in err
    with warnings.catch_warnings():        # as under python -W error: an error, exit 2
        warnings.simplefilter("error", SmallSampleWarning)
        code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "3",
                                      *flags(checkpoints)])
    assert code == 2 and err.startswith("mist: error: SmallSampleWarning, an error under -W "
                                        "or PYTHONWARNINGS: ") and "n >= 10" in err, err
    assert "mist: warning" not in err


@pytest.mark.parametrize("estimator", ["mist", "cca"])
def test_tied_columns_are_named_by_their_headers(tmp_path, capsys, checkpoints, estimator):
    rng = np.random.default_rng(2)
    level = rng.integers(0, 3, 200)
    path = tmp_path / "t.csv"
    pd.DataFrame({"u": rng.standard_normal(200), "level": level,
                  "w": level + rng.standard_normal(200)}).to_csv(path, index=False)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "u,level", "--y", "w",
                                  "--estimator", estimator,
                                  *(flags(checkpoints) if estimator == "mist" else [])])
    assert code == 0, err
    if estimator == "cca":                  # CCA does not warn of ties
        assert "TiedDataWarning" not in err
    else:
        assert err.count("TiedDataWarning") == 1, err
        assert "'level' (3 distinct values in 200 rows) is discrete" in err
        assert "column 1" not in err


def test_interval_level_and_method_are_reported(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0:3", "--y", "3:5",
                                  "--level", "0.8", "--json", *flags(checkpoints)])
    assert code == 0, err
    res = json.loads(out)
    assert res["level"] == 0.8 and res["lower"] <= res["estimate"] <= res["upper"]
    assert "raw quantiles" in res["interval_method"] and res["notes"] == []


def test_level_beyond_the_trained_quantiles_is_refused(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "3",
                                  "--level", "0.99", *flags(checkpoints)])
    assert code == 2 and out == ""
    assert "level 0.99" in err and "up to level 0.98" in err


def test_estimate_outside_the_interval_is_said(tmp_path, capsys, checkpoints, data):
    qr = tiny_checkpoint(tmp_path / "shifted.safetensors", "mist_qr", shift=50.0)
    path = tmp_path / "d.npy"
    np.save(path, data)
    argv = ["estimate", str(path), "--x", "0:3", "--y", "3:5",
            "--checkpoint", str(checkpoints["mist"]), "--qr-checkpoint", str(qr)]
    code, out, err = run(capsys, argv + ["--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["lower"] > res["estimate"]
    assert len(res["notes"]) == 1 and "outside the interval" in res["notes"][0]
    code, out, err = run(capsys, argv)
    assert code == 0 and "note: the estimate lies outside the interval" in out


def test_point_checkpoint_as_qr_checkpoint_is_refused(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "3",
                                  "--qr-checkpoint", str(checkpoints["mist"])])
    assert code == 2 and "is not a quantile (mist_qr) checkpoint" in err


# ------------------------------------------------------------------ conditional MI: --z
@pytest.fixture(scope="module")
def chain_csv(tmp_path_factory):
    """a <- z -> b: a and b dependent, independent given z."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal(600)
    frame = pd.DataFrame({"a": z + 0.5 * rng.standard_normal(600),
                          "b": z + 0.5 * rng.standard_normal(600),
                          "z": z, "c": rng.standard_normal(600)})
    path = tmp_path_factory.mktemp("chain") / "chain.csv"
    frame.to_csv(path, index=False)
    return path, frame


@pytest.mark.parametrize("estimator", ["cca", "ksg"])
def test_z_gives_the_estimators_conditional_mi(capsys, chain_csv, estimator):
    from mistmodel.estimators import CCA, KSG
    path, frame = chain_csv
    code, out, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b", "--z", "z",
                                  "--estimator", estimator, "--json"])
    assert code == 0, err
    res = json.loads(out)
    est = {"cca": CCA, "ksg": KSG}[estimator]()
    cols = [frame[[c]].to_numpy() for c in "abz"]
    assert res["estimate"] == pytest.approx(est.estimate_conditional(*cols))
    assert res["z_columns"] == ["z"] and res["estimator"] == est.name
    assert abs(res["estimate"]) < 0.05 < est.estimate(*cols[:2])
    code, out, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b", "--z", "z",
                                  "--estimator", estimator])
    assert code == 0 and out.startswith("I(X;Y|Z) = "), err


def test_z_with_mist_uses_the_conditional_network(capsys, chain_csv, checkpoints):
    from mistmodel import MIST
    path, frame = chain_csv
    code, out, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b", "--z", "z",
                                  "--json"])
    assert code == 0, err
    res = json.loads(out)
    cols = [frame[[c]].to_numpy() for c in "abz"]
    assert res["estimate"] == pytest.approx(
        MIST.load(variant="mist_cmi").estimate_conditional(*cols), abs=1e-6)
    assert res["estimator"] == "mist_cmi" and res["lower"] is None
    assert abs(res["estimate"]) < 0.1
    # an I(X;Y) checkpoint cannot answer I(X;Y|Z)
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b", "--z", "z",
                                "--checkpoint", str(checkpoints["mist"])])
    assert code == 2 and "not a conditional (mist_cmi) checkpoint" in err, err
    # and the conditional checkpoint cannot answer I(X;Y)
    from mistmodel.mist import default_checkpoint
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b",
                                "--checkpoint", str(default_checkpoint("mist_cmi"))])
    assert code == 2 and "pass --z, or give an I(X;Y) checkpoint" in err, err


def test_estimator_flag_without_z_gives_that_estimate(capsys, chain_csv):
    from mistmodel.estimators import CCA
    path, frame = chain_csv
    code, out, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b,c",
                                  "--estimator", "cca", "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["estimate"] == pytest.approx(CCA().estimate(frame[["a"]], frame[["b", "c"]]))
    assert res["lower"] is None and "z_columns" not in res


@pytest.mark.parametrize("argv_tail, match", [
    (["--z", "z", "--qr-checkpoint", "x.safetensors"], "--qr-checkpoint has no use with --z"),
    (["--z", "z", "--level", "0.8"], "--level has no use with --z"),
    (["--z", "a", "--estimator", "ksg"], "--z and --x share columns 'a'"),
    (["--z", "zz", "--estimator", "ksg"], "--z: no column named 'zz'"),
    (["--estimator", "ksg", "--checkpoint", "x.safetensors"], "--checkpoint applies to "
     "--estimator mist only"),
])
def test_bad_conditioning_is_named(capsys, chain_csv, argv_tail, match):
    path, _ = chain_csv
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b", *argv_tail])
    assert code == 2 and match in err, err


# ------------------------------------------------------------------ mist matrix
def test_matrix_writes_netcdf_and_png(tmp_path, capsys, checkpoints, chain_csv):
    import xarray as xr
    path, _ = chain_csv
    out, png = tmp_path / "mi.nc", tmp_path / "mi.png"
    code, text, err = run(capsys, ["matrix", str(path), "--columns", "a,b,z", "--out", str(out),
                                   "--png", str(png), "--checkpoint", str(checkpoints["mist"])])
    assert code == 0, err
    assert "3 columns (3 pairs" in text
    mi = xr.load_dataarray(out)
    assert list(mi.coords["variable_1"].values) == ["a", "b", "z"]
    assert mi.attrs["estimator"] == "mist" and mi.attrs["source_file"] == str(path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mi.nc", "mi.png"]   # no temp files


def test_matrix_never_overwrites_without_force(tmp_path, capsys, chain_csv):
    import xarray as xr
    path, _ = chain_csv
    out = tmp_path / "mi.nc"
    out.write_text("keep me")
    argv = ["matrix", str(path), "--estimator", "cca", "--permutations", "4", "--out", str(out)]
    code, _, err = run(capsys, argv)
    assert code == 2 and "the file exists; pass --force" in err
    assert out.read_text() == "keep me"
    code, _, err = run(capsys, [*argv, "--force"])
    assert code == 0, err
    res = xr.load_dataset(out)
    assert set(res.data_vars) == {"mi", "p_value", "p_value_adjusted"}
    assert res.attrs["permutations"] == 4
    assert res["mi"].sel(variable_1="a", variable_2="b") > res["mi"].sel(variable_1="a",
                                                                          variable_2="c")


def test_matrix_replaces_its_files_together_and_writes_through_links(tmp_path, capsys,
                                                                      chain_csv, monkeypatch):
    import mistmodel.cli as cli

    path, _ = chain_csv
    out, png, target = tmp_path / "mi.nc", tmp_path / "mi.png", tmp_path / "kept.nc"
    out.write_text("old table")
    png.write_text("old figure")
    argv = ["matrix", str(path), "--estimator", "cca", "--out", str(out), "--png", str(png),
            "--force"]

    def broken(result, tmp):
        raise RuntimeError("no figure")

    monkeypatch.setattr(cli, "_heatmap", broken)
    try:
        code, _, err = run(capsys, argv)
    except RuntimeError:
        code, err = 1, "no figure"
    assert code != 0 and "no figure" in err
    assert out.read_text() == "old table" and png.read_text() == "old figure"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    monkeypatch.undo()
    target.write_text("old")
    out.unlink()
    out.symlink_to(target)                       # --out a link: the link stays
    code, _, err = run(capsys, argv)
    assert code == 0, err
    assert out.is_symlink() and target.stat().st_size > 100


def test_matrix_of_a_header_that_repeats_or_omits_a_name(tmp_path, capsys):
    import xarray as xr
    rng = np.random.default_rng(5)
    body = "\n".join(",".join(f"{v:.6f}" for v in row) for row in rng.standard_normal((60, 3)))
    for header, names in (("a,a,b", ["a[0]", "a[1]", "b"]), ("2,b,", ["2[0]", "b", "2[2]"])):
        path, out = tmp_path / "t.csv", tmp_path / "mi.nc"
        path.write_text(header + "\n" + body + "\n")
        code, _, err = run(capsys, ["matrix", str(path), "--estimator", "cca", "--out", str(out),
                                    "--force"])
        assert code == 0, err
        assert list(xr.load_dataarray(out).coords["variable_1"].values) == names


@pytest.mark.parametrize("argv_tail, match", [
    (["--out", "{dir}/mi.csv"], "--out {dir}/mi.csv: the file name must end in .nc"),
    (["--out", "{dir}/missing/mi.nc"], "directory {dir}/missing does not exist"),
    (["--out", "{dir}/mi.nc", "--png", "{dir}/mi.jpg"], "must end in .png"),
    (["--out", "{dir}/mi.nc", "--columns", "a"], "needs at least two columns"),
    (["--out", "{dir}/mi.nc", "--columns", "a,k"], "column 'k' is constant"),
    (["--out", "{dir}/mi.nc", "--columns", "a,zz"], "--columns: no column named 'zz'"),
    (["--out", "{dir}/mi.nc", "--permutations", "-1"], "--permutations must be >= 0"),
])
def test_matrix_bad_input_is_named(tmp_path, capsys, chain_csv, argv_tail, match):
    _, frame = chain_csv
    path = tmp_path / "k.csv"
    frame.assign(k=3.0).to_csv(path, index=False)
    argv = [a.format(dir=tmp_path) for a in argv_tail]
    code, _, err = run(capsys, ["matrix", str(path), "--estimator", "cca", *argv])
    assert code == 2 and match.format(dir=tmp_path) in err, err


@pytest.mark.parametrize("argv, message", [
    (["matrix", "{path}", "--columns", "a,zz", "--out", "{dir}/mi.nc"],
     "--columns: no column named 'zz'"),
    # a level beyond MIST-QR's quantile grid, read from its card's header
    (["estimate", "{path}", "--x", "a", "--y", "b", "--level", "0.99"],
     "its intervals go up to level 0.98"),
])
def test_a_typo_is_answered_without_importing_torch(tmp_path, chain_csv, argv, message):
    import os
    import subprocess
    import sys
    from pathlib import Path
    path, _ = chain_csv
    root = str(Path(__file__).resolve().parents[1])      # this tree, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")]))}
    check = ("import sys\nfrom mistmodel.cli import main\ncode = main(sys.argv[1:])\n"
             "print(code, [m for m in ('torch', 'xarray') if m in sys.modules])\n")
    argv = [a.format(path=path, dir=tmp_path) for a in argv]
    proc = subprocess.run([sys.executable, "-c", check, *argv], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert proc.stdout.strip() == "2 []", (proc.stdout, proc.stderr)
    assert message in proc.stderr


# -- mist test ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cit_csv(tmp_path_factory):
    """x <- z -> y (dependent, independent given z), w independent of all, c constant."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal(300)
    frame = pd.DataFrame({"x": z + rng.standard_normal(300), "y": z + rng.standard_normal(300),
                          "z": z, "w": rng.standard_normal(300), "c": np.ones(300)})
    path = tmp_path_factory.mktemp("test") / "chain.csv"
    frame.to_csv(path, index=False)
    return path


def run_json(capsys, *argv):
    assert main([*map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_ksg_takes_columns_with_few_values_as_discrete_and_names_them(tmp_path, capsys):
    import xarray as xr

    from mistmodel.estimators import KSG
    from mistmodel.independence import conditional_independence_test

    rng = np.random.default_rng(0)
    latent = rng.standard_normal((300, 2))
    frame = pd.DataFrame({"u": latent[:, 0] > 0, "v": 0.5 * latent[:, 0] + latent[:, 1] > 0,
                          "c": rng.standard_normal(300), "k": 1.0}).astype(float)
    path = tmp_path / "binary.csv"
    frame.to_csv(path, index=False)
    res = run_json(capsys, "estimate", path, "--x", "k,u", "--y", "v,c", "--estimator", "ksg")
    assert res["discrete_columns"] == {"x": ["u"], "y": ["v"]}
    assert any("KSG took as discrete" in note for note in res["notes"])
    x, y = frame[["k", "u"]].to_numpy(), frame[["v", "c"]].to_numpy()
    assert res["estimate"] == KSG(discrete="auto").estimate(x, y)
    test = run_json(capsys, "test", path, "--x", "c", "--y", "v", "--z", "u", "--estimator",
                    "ksg", "--permutations", 19)
    assert test["discrete_columns"] == {"y": ["v"], "z": ["u"]}
    c, v, u = (frame[[name]].to_numpy() for name in "cvu")
    assert test["p_value"] == conditional_independence_test(KSG(discrete="auto"), c, v, u, 19,
                                                            seed=0).p_value
    continuous = run_json(capsys, "estimate", path, "--x", "c", "--y", "u", "--estimator", "cca")
    assert "discrete_columns" not in continuous
    assert main(["matrix", str(path), "--columns", "u,v,c", "--estimator", "ksg",
                 "--out", str(tmp_path / "mi.nc")]) == 0
    assert "KSG took as discrete (few distinct values; mixed-KSG estimator, the values as " \
        "categories): columns 'u', 'v'" in capsys.readouterr().out
    assert json.loads(xr.open_dataarray(tmp_path / "mi.nc").attrs["discrete_columns"]) == \
        ["u", "v"]


def test_ksg_says_how_many_rows_it_left_out(tmp_path, capsys):
    rng = np.random.default_rng(1)
    labels = np.concatenate([np.arange(15), rng.integers(15, 19, 185)])
    path = tmp_path / "labels.csv"
    pd.DataFrame({"g": labels, "c": rng.standard_normal(200)}).to_csv(path, index=False)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "g", "--y", "c",
                                  "--estimator", "ksg", "--json"])
    assert code == 0 and "mist: warning (SmallSampleWarning): KSG: 15 of 200 rows" in err
    res = json.loads(out)
    assert res["n"] == 200 and res["rows_used"] == 185
    assert "KSG left out 15 of the 200 rows: each is alone in its combination of discrete " \
        "values" in res["notes"]


def test_discrete_chooses_ksgs_setting_and_advice_names_the_flag(tmp_path, capsys):
    import xarray as xr

    from mistmodel.estimators import KSG
    from mistmodel.independence import independence_test

    rng = np.random.default_rng(0)       # 9 x 9 labels, a normal column each, independent
    frame = pd.DataFrame({"a": rng.integers(0, 9, 300), "b": rng.integers(0, 9, 300),
                          "c": rng.standard_normal(300), "d": rng.standard_normal(300)}
                         ).astype(float)
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    c, d, z = (frame[list(cols)].to_numpy() for cols in ("c", "d", "ab"))
    values = {}
    for flag, setting in (("categories", "auto"), ("numbers", True), ("off", False)):
        code, out, err = run(capsys, ["estimate", str(path), "--x", "c", "--y", "d", "--z",
                                      "a,b", "--estimator", "ksg", "--discrete", flag, "--json"])
        res = json.loads(out)
        assert code == 0 and res["discrete"] == flag
        values[flag] = res["estimate"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert values[flag] == KSG(discrete=setting).estimate_conditional(c, d, z)
        assert ("discrete_columns" in res) == (flag == "categories")
        assert any("values as numbers" in note for note in res["notes"]) == (flag == "numbers")
        if flag == "categories":        # Z's 81 groups of 3.7 rows: it warns, naming the flag
            assert "KSG() (discrete=False), which takes Z's values as numbers, read such " \
                "samples closer. On the command line: KSG() (discrete=False) is --estimator " \
                "ksg --discrete off." in err
        if flag == "off":               # ties broken by noise: the tie warning names the flag
            assert "On the command line: KSG(discrete='auto') is --estimator ksg --discrete " \
                "categories." in err
    assert len(set(values.values())) == 3
    x, y = frame[["a", "d"]].to_numpy(), frame[["b", "c"]].to_numpy()
    test = run_json(capsys, "test", path, "--x", "a,d", "--y", "b,c", "--estimator", "ksg",
                    "--discrete", "off", "--permutations", 9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert test["p_value"] == independence_test(KSG(), x, y, 9, seed=0).p_value
    assert main(["matrix", str(path), "--estimator", "ksg", "--discrete", "numbers",
                 "--out", str(tmp_path / "mi.nc")]) == 0
    assert xr.open_dataarray(tmp_path / "mi.nc").attrs["ksg_discrete"] == "numbers"
    for command in (["estimate", "--x", "a", "--y", "b"], ["test", "--x", "a", "--y", "b"],
                    ["matrix", "--out", str(tmp_path / "m2.nc")]):
        code, _, err = run(capsys, [command[0], str(path), *command[1:], "--discrete", "off"])
        assert code == 2 and "--discrete chooses KSG's setting; it has no use with " \
            "--estimator mist" in err
    with pytest.raises(SystemExit):
        main(["estimate", str(path), "--x", "a", "--y", "b", "--estimator", "ksg",
              "--discrete", "words"])
    assert "invalid choice: 'words'" in capsys.readouterr().err


def test_advice_without_a_full_stop_still_reads_as_two_sentences(tmp_path, capsys):
    rng = np.random.default_rng(3)         # 14 rows, nearly all alone in their cell
    path = tmp_path / "few.csv"
    pd.DataFrame({"a": np.arange(14) % 7, "b": np.arange(14) % 5,
                  "c": rng.standard_normal(14)}).to_csv(path, index=False)
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b,c",
                                "--estimator", "ksg"])
    assert code == 2 and "or KSG() (discrete=False). On the command line: KSG() " \
        "(discrete=False) is --estimator ksg --discrete off." in err, err


def test_ksg_says_which_term_of_the_chain_rule_left_rows_out(tmp_path, capsys):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 6, 300)
    kept = np.where(rng.random(300) < 0.9, a, rng.integers(0, 6, 300))
    path = tmp_path / "kept.csv"
    pd.DataFrame({"a": a, "b": kept, "c": rng.standard_normal(300)}).to_csv(path, index=False)
    res = run_json(capsys, "estimate", path, "--x", "a", "--y", "b,c", "--estimator", "ksg")
    left = 300 - res["rows_used"]
    assert left > 0 and f"KSG left out {left} of the 300 rows from I(X;Yc|Yd): each is " \
        "alone in its combination of discrete values" in res["notes"]


def test_mist_test_gives_the_library_tests_p_values(cit_csv, capsys):
    from mistmodel.estimators import KSG
    from mistmodel.independence import conditional_independence_test, independence_test

    frame = pd.read_csv(cit_csv)
    x, y, z = (frame[[c]].to_numpy() for c in "xyz")
    marginal = run_json(capsys, "test", cit_csv, "--x", "x", "--y", "y", "--estimator", "ksg",
                        "--permutations", 99)
    assert marginal["test"] == "independence" and marginal["p_value"] == 0.01
    assert marginal["p_value"] == independence_test(KSG(discrete="auto"), x, y, 99,
                                                    seed=0).p_value
    given = run_json(capsys, "test", cit_csv, "--x", "x", "--y", "y", "--z", "z",
                     "--estimator", "ksg", "--permutations", 99, "--neighbours", 7)
    assert given["test"] == "conditional independence" and given["z_columns"] == ["z"]
    assert given["p_value"] == conditional_independence_test(KSG(discrete="auto"), x, y, z, 99,
                                                             seed=0, neighbours=7).p_value
    shipped = run_json(capsys, "test", cit_csv, "--x", "x", "--y", "w", "--permutations", 19)
    assert shipped["estimator"] == "mist" and shipped["n_permutations"] == 19
    assert main(["test", str(cit_csv), "--x", "x", "--y", "y", "--z", "z",
                 "--permutations", "9"]) == 0
    out = capsys.readouterr().out
    assert "X independent of Y given Z: p = " in out and "mist_cmi" in out


@pytest.mark.parametrize("argv, message", [
    (["--x", "x", "--y", "c"], "every Y column (--y) is constant"),
    (["--x", "x", "--y", "y", "--z", "c"], "every Z column (--z) is constant"),
    (["--x", "x", "--y", "y", "--permutations", "0"], "--permutations must be >= 1"),
    (["--x", "x", "--y", "y", "--seed", "-1"], "--seed must be >= 0"),
    (["--x", "x", "--y", "y", "--neighbours", "3"], "--neighbours has no use without --z"),
    (["--x", "x", "--y", "y", "--z", "z", "--neighbours", "1"], "neighbours must be"),
    (["--x", "x", "--y", "y", "--estimator", "ksg", "--checkpoint", "a.safetensors"],
     "--checkpoint applies to --estimator mist only"),
])
def test_mist_test_refuses_what_it_cannot_test(cit_csv, capsys, argv, message):
    assert main(["test", str(cit_csv), *argv]) == 2
    assert message in capsys.readouterr().err


def dependent_pair_file(tmp_path, n, slope, seed):
    """``(path, x, y)``: a .npy file of one column x and one column y = slope * x + noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 1))
    y = slope * x + rng.standard_normal((n, 1))
    path = tmp_path / f"pair{seed}.npy"
    np.save(path, np.hstack([x, y]))
    return path, x, y


def test_neighbour_correction_flag_matches_python_api(tmp_path, capsys):
    from mistmodel import MIST
    path, x, y = dependent_pair_file(tmp_path, 1000, 0.4, 3)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction", "--json"])
    assert code == 0, err
    res = json.loads(out)
    controlled = MIST.load(neighbour_correction=True)
    assert res["estimate"] == pytest.approx(controlled.estimate(x, y), abs=1e-9)
    assert res["estimate"] != pytest.approx(MIST.load().estimate(x, y), abs=1e-6)
    assert res["neighbour_correction"]["weight"] == 1.0
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction"])
    assert code == 0 and "neighbour correction: weight 1.00" in out, err


@pytest.mark.parametrize("extra, match", [
    (["--estimator", "ksg"], "--neighbour-correction corrects MIST"),
    (["--z", "2"], "--neighbour-correction corrects MIST"),
])
def test_neighbour_correction_flag_refused_where_it_has_no_use(tmp_path, capsys, data, extra, match):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction", *extra])
    assert code == 2 and match in err, err


def test_neighbour_correction_flag_refuses_a_quantile_checkpoint(tmp_path, capsys, checkpoints, data):
    path = tmp_path / "d.npy"
    np.save(path, data)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction", "--checkpoint",
                                  str(checkpoints["mist_qr"])])
    assert code == 2 and "neighbour_correction corrects the point estimate" in err, err
    assert "this checkpoint is 'mist_qr'" in err


def test_neighbour_correction_flag_with_a_constant_side(tmp_path, capsys):
    rng = np.random.default_rng(4)
    path = tmp_path / "c.npy"
    np.save(path, np.hstack([rng.standard_normal((500, 1)), np.ones((500, 1))]))
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction", "--json"])
    assert code == 0, err
    res = json.loads(out)
    assert res["estimate"] == 0.0
    assert res["neighbour_correction"]["reason"] == "a side is constant"
    code, out, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction"])
    assert code == 0 and "neighbour correction: not applied: a side is constant" in out, err


def test_neighbour_correction_flag_in_test_and_matrix(tmp_path, capsys):
    from mistmodel import MIST
    from mistmodel.independence import independence_test
    path, x, y = dependent_pair_file(tmp_path, 300, 0.2, 5)
    code, out, err = run(capsys, ["test", str(path), "--x", "0", "--y", "1", "--permutations",
                                  "19", "--neighbour-correction", "--json"])
    assert code == 0, err
    expected = independence_test(MIST.load(neighbour_correction=True), x, y, 19, seed=0)
    assert json.loads(out)["p_value"] == pytest.approx(expected.p_value)
    code, out, err = run(capsys, ["test", str(path), "--x", "0", "--y", "1",
                                  "--neighbour-correction", "--estimator", "ksg"])
    assert code == 2 and "--neighbour-correction corrects MIST" in err, err
    code, out, err = run(capsys, ["matrix", str(path), "--out", str(tmp_path / "m.nc"),
                                  "--neighbour-correction"])
    assert code == 0, err


def test_integers_float64_cannot_hold_apart_are_refused(tmp_path, capsys):
    rows = np.arange(100, dtype=np.uint64)
    path = tmp_path / "ids.csv"
    pd.DataFrame({"id": 10**19 + rows, "v": rows}).to_csv(path, index=False)
    code, out, err = run(capsys, ["estimate", str(path), "--x", "id", "--y", "v",
                                  "--estimator", "ksg"])
    assert code == 2 and "--x: column 'id'" in err and "beyond 2**53" in err, err


def test_one_row_and_unusable_paths_are_clean_errors(tmp_path, capsys):
    path = tmp_path / "one.csv"
    path.write_text("a,b\n1,2\n")
    code, out, err = run(capsys, ["matrix", str(path), "--out", str(tmp_path / "m.nc")])
    assert code == 2 and "has 1 data row; an MI matrix needs at least 2" in err, err
    code, out, err = run(capsys, ["estimate", str(tmp_path / ("a" * 300 + ".csv")),
                                  "--x", "a", "--y", "b"])
    assert code == 2 and err.startswith("mist: error:") and "Traceback" not in err, err


def test_json_is_strict_and_object_arrays_are_refused(tmp_path, capsys):
    from mistmodel.cli import _json
    out = json.loads(_json({"estimate": float("inf"), "lower": None, "notes": ["a"]}))
    assert out["estimate"] is None and out["notes"] == ["a", "estimate is inf (written as null)"]
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1, "a"], [2, "b"]], dtype=object), allow_pickle=True)
    code, _, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1"])
    assert code == 2 and "holds Python objects (dtype object)" in err, err


def test_no_cross_check_reaches_mist(tmp_path, capsys, monkeypatch):
    import mistmodel.mist as mist_module
    seen = []
    real = mist_module.MIST.load.__func__
    monkeypatch.setattr(mist_module.MIST, "load", classmethod(
        lambda cls, *a, **kw: seen.append(kw.get("cross_check")) or real(cls, *a, **kw)))
    rng = np.random.default_rng(3)
    path = tmp_path / "d.csv"
    pd.DataFrame(rng.standard_normal((60, 2)), columns=["a", "b"]).to_csv(path, index=False)
    code, _, err = run(capsys, ["matrix", str(path), "--out", str(tmp_path / "m.nc"),
                                "--no-cross-check"])
    assert code == 0 and seen == [False], err


def _huge_value_csv(tmp_path):
    """Columns a, b, c of 40 rows; c holds one value of 1e300, too wide for an estimator."""
    rows = np.column_stack([np.arange(40.0), np.arange(40.0) % 7, np.arange(40.0) + 1])
    rows[0, 2] = 1e300
    path = tmp_path / "huge.csv"
    pd.DataFrame(rows, columns=["a", "b", "c"]).to_csv(path, index=False)
    return path


def test_an_estimators_error_names_the_tables_column(tmp_path, capsys):
    path = _huge_value_csv(tmp_path)
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a,c", "--y", "b",
                                "--estimator", "ksg"])
    assert code == 2 and "column 'c' (--x) spans too wide a range" in err, err
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b", "--z", "c",
                                "--estimator", "ksg"])
    assert code == 2 and "column 'c' (--z) spans too wide a range" in err, err


def test_advice_beyond_the_trained_dims_is_given_as_flags(tmp_path, capsys):
    path = tmp_path / "wide.npy"
    np.save(path, np.random.default_rng(0).standard_normal((200, 80)))
    code, _, err = run(capsys, ["estimate", str(path), "--x", "0:40", "--y", "40:80"])
    assert code == 2 and "or use --estimator cca or ksg" in err, err
    assert "load MIST with out_of_range" not in err


def write_lines(path, header, rows):
    path.write_text(header + "".join(f"{a:.3f},{b:.3f}\n" for a, b in rows))
    return path


def test_a_first_line_of_empty_fields_is_refused_and_blank_lines_skipped(tmp_path, capsys):
    rows = np.random.default_rng(0).random((60, 2))
    for header in (",\n2001,2002\n", ",\na,b\n", " , \n"):
        for flag in ([], ["--header"], ["--no-header"]):
            path = write_lines(tmp_path / "lead.csv", header, rows)
            code, _, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                        "--estimator", "ksg", *flag])
            assert code == 2 and "its first line (line 1) holds only empty fields" in err, err
    path = write_lines(tmp_path / "blank.csv", "  \n\na,b\n", rows)
    res = run_json(capsys, "estimate", path, "--x", "a", "--y", "b", "--estimator", "ksg")
    assert res["n"] == 60 and res["x_columns"] == ["a"]


def test_no_cross_check_reaches_the_conditional_network(capsys, chain_csv, cit_csv,
                                                          monkeypatch):
    import mistmodel.mist as mist_module
    loaded = []
    real = mist_module.MIST.load.__func__
    monkeypatch.setattr(mist_module.MIST, "load", classmethod(
        lambda cls, *a, **kw: loaded.append(real(cls, *a, **kw)) or loaded[-1]))
    path, _ = chain_csv
    run_json(capsys, "estimate", path, "--x", "a", "--y", "b", "--z", "z", "--no-cross-check")
    run_json(capsys, "test", cit_csv, "--x", "x", "--y", "y", "--z", "z", "--permutations", 3,
             "--no-cross-check")
    assert [m.cross_check for m in loaded] == [False, False]
    assert all(m.is_conditional for m in loaded)


def test_npy_files_that_hold_no_numeric_array_are_refused(tmp_path, capsys):
    durations = tmp_path / "durations.npy"
    np.save(durations, np.array([[1, 2], [3, 4], [5, 6]], dtype="timedelta64[s]"))
    archive = tmp_path / "archive.npy"
    with open(archive, "wb") as f:
        np.savez(f, a=np.zeros((5, 2)))
    text = tmp_path / "text.npy"
    text.write_text("a,b\n1,2\n")
    for path, message in ((durations, "holds durations (timedelta64[s])"),
                          (archive, "is a .npz archive (a zip file of arrays), not a .npy"),
                          (text, "is not a .npy file")):
        code, _, err = run(capsys, ["estimate", str(path), "--x", "0", "--y", "1",
                                    "--estimator", "ksg"])
        assert code == 2 and str(path) in err and message in err, err


def test_numbers_pandas_holds_as_objects_are_read_or_refused_by_value(tmp_path, capsys):
    import decimal
    rng = np.random.default_rng(0)
    v = rng.random(50)
    path = tmp_path / "big.csv"
    spaced = pd.DataFrame({"a": [str(5 * 10**19 + i * 10**6) for i in range(50)], "b": v})
    spaced.to_csv(path, index=False)
    res = run_json(capsys, "estimate", path, "--x", "a", "--y", "b", "--estimator", "ksg")
    assert res["n"] == 50 and np.isfinite(res["estimate"])
    for first in (5 * 10**19, -10**19):
        pd.DataFrame({"a": [str(first + i) for i in range(50)], "b": v}).to_csv(path,
                                                                               index=False)
        code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b",
                                    "--estimator", "ksg"])
        assert code == 2 and "--x: column 'a'" in err and "beyond 2**53" in err, err
        assert "non-numeric" not in err
    path.write_text("a,b\n" + "9" * 400 + ",1\n" + "".join(f"{i},{i % 3}\n" for i in range(9)))
    code, _, err = run(capsys, ["estimate", str(path), "--x", "a", "--y", "b",
                                "--estimator", "ksg"])
    assert code == 2 and "beyond float64's range" in err and "at data row 0" in err, err
    pq = tmp_path / "decimals.parquet"
    pd.DataFrame({"d": [decimal.Decimal(f"{x:.2f}") for x in v], "e": v}).to_parquet(pq)
    res = run_json(capsys, "estimate", pq, "--x", "d", "--y", "e", "--estimator", "ksg")
    assert res["n"] == 50 and res["estimate"] > 1
    pd.DataFrame({"d": [decimal.Decimal(10**30 + i) for i in range(50)], "e": v}).to_parquet(pq)
    code, _, err = run(capsys, ["estimate", str(pq), "--x", "d", "--y", "e",
                                "--estimator", "ksg"])
    assert code == 2 and "--x: column 'd'" in err and "beyond 2**53" in err, err


def test_test_and_matrix_name_the_column_an_estimator_refuses(tmp_path, capsys):
    path = _huge_value_csv(tmp_path)
    code, _, err = run(capsys, ["test", str(path), "--x", "a,c", "--y", "b",
                                "--estimator", "ksg", "--permutations", "9"])
    assert code == 2 and "column 'c' (--x) spans too wide a range" in err, err
    code, _, err = run(capsys, ["test", str(path), "--x", "a", "--y", "b", "--z", "c",
                                "--estimator", "ksg", "--permutations", "9"])
    assert code == 2 and "column 'c' (--z) spans too wide a range" in err, err
    code, _, err = run(capsys, ["matrix", str(path), "--out", str(tmp_path / "m.nc"),
                                "--estimator", "ksg"])
    assert code == 2 and "the pair 'a', 'c': column 'c' spans too wide a range" in err, err


def test_mist_test_names_the_constant_columns_it_leaves_out(cit_csv, capsys):
    argv = ["test", str(cit_csv), "--x", "x,c", "--y", "y", "--estimator", "ksg",
            "--permutations", "9"]
    res = run_json(capsys, *argv)
    assert res["dropped_constant_columns"] == {"x": ["c"], "y": []}
    code, out, err = run(capsys, argv)
    assert code == 0 and \
        "constant X columns left out (they carry no information): 'c'" in out, err
