"""Families from a user's file: the example family's exact MI, the loader's errors, and the
workflow picking a family file up from one config line (jobs, environment, dry run)."""
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy import integrate

import mistgen
from mistgen import FAMILIES, TRANSFORMS
from mistgen.registry import FAMILY_FILES_ENV
from mistgen.user_families import (FamilyFileError, load_family_files, loaded_family_files,
                                   unload_family_files)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow" / "scripts"))

from common.checks import ConfigError  # noqa: E402
from common.families import (check_family_mi, family_file_paths, store_family_files,  # noqa: E402
                             use_family_files)

EXAMPLE = ROOT / "workflow" / "families" / "laplace_channel.py"


@pytest.fixture
def example():
    """The example family file loaded in this process, forgotten afterwards."""
    load_family_files([EXAMPLE])
    yield sys.modules[next(m for m in sys.modules if m.startswith("mistgen_user_laplace_channel"))]
    unload_family_files([EXAMPLE])


@pytest.fixture
def family_file(tmp_path):
    """Write a family file; every file written is forgotten afterwards."""
    written = []

    def write(body, name="fam.py"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(body))
        written.append(path)
        return path

    yield write
    unload_family_files(written)


FAMILY_HEADER = """\
    import numpy as np
    from mistgen.families.base import Family
    from mistgen.registry import FAMILIES, TRANSFORMS
    """

A_FAMILY = FAMILY_HEADER + """
    @FAMILIES.register
    class Shifted(Family):
        name = "{name}"
        default_prior = {{"rho": (0.1, 0.9)}}

        def draw_params(self, rng, dim_x, dim_y, prior):
            return {{"rho": self.draw(rng, "rho", prior)}}

        def mutual_information(self, params, dim_x, dim_y):
            return -0.5 * np.log(1 - params["rho"] ** 2) + {bias}

        def sample(self, rng, n, dim_x, dim_y, params):
            x = rng.standard_normal((n, 1))
            y = params["rho"] * x + np.sqrt(1 - params["rho"] ** 2) * rng.standard_normal((n, 1))
            return x, y
    """


# -- the example family ---------------------------------------------------------------

@pytest.mark.parametrize("b", [0.1, 0.5, 1.5])
def test_example_family_mi_matches_ksg(example, b):
    exact, estimate = check_family_mi("laplace_channel-base", {"b": [b]}, n=20_000, tol=0.03)
    assert exact == pytest.approx(example.laplace_channel_mi(b), abs=0)
    # the Gaussian channel of the same noise variance is the least informative one
    assert exact > 0.5 * math.log(1 + 1 / (2 * b * b))


def test_example_family_mi_survives_a_transform(example):
    check_family_mi("laplace_channel-asinh", {"b": [0.3]}, n=20_000, tol=0.03)


def test_verify_names_the_missing_family_file_and_checks_with_it(example, tmp_path):
    store = mistgen.build_meta_dataset(tmp_path / "s.zarr", ["laplace_channel-base"], 6,
                                       dim_range=(1, 1), shard_size=3, workers=1,
                                       progress=False).path
    env = {k: v for k, v in os.environ.items() if k != FAMILY_FILES_ENV}
    verify = [sys.executable, "-m", "mistgen", "verify", str(store), str(tmp_path / "none")]
    run = subprocess.run(verify, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2 and "DAMAGED" not in run.stdout + run.stderr
    assert "'laplace_channel-base' name a family or transform not registered" in run.stderr
    assert "MISTGEN_FAMILY_FILES=" in run.stderr and "none: no such file" in run.stderr
    run = subprocess.run(verify[:-1], capture_output=True, text=True, timeout=300,
                         env={**env, FAMILY_FILES_ENV: str(EXAMPLE)})
    assert run.returncode == 0 and ": OK (6 datapoints" in run.stdout


@pytest.mark.filterwarnings("error::mistmodel.caller_warnings.TiedDataWarning")
def test_the_mi_check_takes_discrete_families_as_discrete():
    exact, estimate = check_family_mi("discrete-table-base", n=20_000, tol=0.03)
    assert exact > 0.05


@pytest.mark.parametrize("b", [0.1, 0.7, 2.0])
def test_example_density_is_the_convolution(example, b):
    """The closed-form density against a numerical convolution of N(0, 1) and Laplace(b),
    and its mass and variance (1 + 2 b^2)."""
    def convolved(y):
        return integrate.quad(lambda x: math.exp(-x * x / 2 - abs(y - x) / b)
                              / (math.sqrt(2 * math.pi) * 2 * b), -np.inf, np.inf,
                              points=None, epsabs=1e-14)[0]

    for y in (-3.0, -0.4, 0.0, 1.1, 5.0):
        assert math.exp(example.normal_laplace_logpdf(y, b)) == pytest.approx(
            convolved(y), rel=1e-7)
    density = lambda y: math.exp(float(example.normal_laplace_logpdf(y, b)))  # noqa: E731
    assert integrate.quad(density, -np.inf, np.inf)[0] == pytest.approx(1.0, abs=1e-9)
    assert integrate.quad(lambda y: y * y * density(y), -np.inf, np.inf)[0] == pytest.approx(
        1 + 2 * b * b, rel=1e-8)


def test_example_family_multivariate_mi_adds_up(example):
    s = mistgen.sample("laplace_channel-base", 50, 3, 3, seed=4)
    assert len(s.params["b"]) == 3
    assert s.mi == pytest.approx(sum(example.laplace_channel_mi(b) for b in s.params["b"]))
    with pytest.raises(mistgen.ShapeError, match="dim_x == dim_y"):
        mistgen.sample("laplace_channel-base", 50, 2, 3, seed=4)


def test_a_family_without_a_method_names_what_it_lacks(family_file):
    load_family_files([family_file(FAMILY_HEADER + """
    @FAMILIES.register
    class Half(Family):
        name = "half_done"
        default_prior = {}

        def draw_params(self, rng, dim_x, dim_y, prior):
            return {}
    """)])
    with pytest.raises(NotImplementedError, match="family 'half_done' .* does not define "
                       "sample\\(self, rng, n, dim_x, dim_y, params\\)"):
        mistgen.sample("half_done-base", 20, 1, 1, 0)


def test_check_helper_catches_a_wrong_mi(family_file):
    load_family_files([family_file(A_FAMILY.format(name="shifted_gauss", bias=0.15))])
    with pytest.raises(AssertionError, match="differ by more than"):
        check_family_mi("shifted_gauss-base", {"rho": 0.6})


def test_check_helper_passes_a_right_mi(family_file):
    load_family_files([family_file(A_FAMILY.format(name="right_gauss", bias=0.0))])
    exact, _ = check_family_mi("right_gauss-base", {"rho": 0.6})
    assert exact == pytest.approx(-0.5 * math.log(1 - 0.36))


# -- the loader -----------------------------------------------------------------------

def test_loading_registers_once_and_unloading_forgets(family_file):
    path = family_file(A_FAMILY.format(name="once_gauss", bias=0.0))
    assert load_family_files([path]) == ["once_gauss"]
    assert load_family_files([path]) == ["once_gauss"]   # a second load is a no-op
    assert "once_gauss" in FAMILIES and str(path.resolve()) in loaded_family_files()
    unload_family_files([path])
    assert "once_gauss" not in FAMILIES
    with pytest.raises(mistgen.SpecError, match="once_gauss"):
        mistgen.sample("once_gauss-base", 10, 1, 1, seed=0)


def test_a_transform_file(family_file):
    path = family_file(FAMILY_HEADER + """
    from mistgen.transforms import Transform

    @TRANSFORMS.register
    class Cube(Transform):
        name = "cube_it"
        def forward(self, v, side):
            return v ** 3
        def inverse(self, v, side):
            return np.cbrt(v)
    """)
    assert load_family_files([path]) == ["cube_it"]
    s = mistgen.sample("normal-dense-cube_it", 20, 1, 1, seed=0)
    base = mistgen.sample("normal-dense-base", 20, 1, 1, seed=0)
    np.testing.assert_allclose(s.x, base.x ** 3)


def test_missing_file():
    with pytest.raises(FamilyFileError, match="nowhere.py.*no such file"):
        load_family_files(["nowhere.py"])


def test_syntax_error_names_file_and_line(family_file):
    path = family_file(FAMILY_HEADER + "\n    class Broken(:\n        pass\n")
    with pytest.raises(FamilyFileError, match=rf"{path}, line 5: syntax error"):
        load_family_files([path])


def test_error_while_running_names_the_line(family_file):
    path = family_file(FAMILY_HEADER + "\n    value = undefined_name + 1\n")
    with pytest.raises(FamilyFileError, match=r"line 5: loading it raised NameError"):
        load_family_files([path])


def test_class_without_a_name(family_file):
    path = family_file(FAMILY_HEADER + """
    @FAMILIES.register
    class Nameless(Family):
        pass
    """)
    with pytest.raises(FamilyFileError, match=r"line 5: .*Nameless has no 'name' attribute"):
        load_family_files([path])


def test_clash_with_a_built_in_family_leaves_the_registry_as_it_was(family_file):
    before = FAMILIES.names()
    path = family_file(A_FAMILY.format(name="fresh_gauss", bias=0.0)
                       + A_FAMILY.format(name="normal-dense", bias=0.0)
                       .replace(FAMILY_HEADER, "").replace("Shifted", "Clash"))
    with pytest.raises(FamilyFileError,
                       match="'normal-dense' .* already registered by the built-in module "
                             "mistgen.families.gaussian"):
        load_family_files([path])
    assert FAMILIES.names() == before   # fresh_gauss, registered first, is gone again
    assert type(FAMILIES.get("normal-dense")).__module__ == "mistgen.families.gaussian"


def test_name_that_changes_an_existing_spec(family_file):
    path = family_file(A_FAMILY.format(name="normal-dense-asinh", bias=0.0))
    with pytest.raises(FamilyFileError, match="would change what the spec 'normal-dense-asinh'"):
        load_family_files([path])
    assert "normal-dense-asinh" not in FAMILIES


def test_file_that_registers_nothing(family_file):
    path = family_file(FAMILY_HEADER + "\n    class NotRegistered(Family):\n        name = 'x'\n")
    with pytest.raises(FamilyFileError, match="registers no family or transform"):
        load_family_files([path])


def test_registered_class_that_is_not_a_family(family_file):
    path = family_file(FAMILY_HEADER + """
    @FAMILIES.register
    class Plain:
        name = "plain_thing"
    """)
    with pytest.raises(FamilyFileError, match="must subclass mistgen.families.base.Family"):
        load_family_files([path])
    assert "plain_thing" not in FAMILIES and "plain_thing" not in TRANSFORMS


# -- the workflow ---------------------------------------------------------------------

def test_config_paths_are_relative_to_the_workflow(tmp_path):
    config = {"family_files": ["workflow/families/a.py", str(tmp_path / "b.py")]}
    assert family_file_paths(config, ROOT) == [str(ROOT / "workflow/families/a.py"),
                                               str(tmp_path / "b.py")]
    assert family_file_paths({}, ROOT) == []


def test_a_store_depends_on_the_files_of_its_families(example, family_file):
    """A store's family files are inputs of its job: editing one rebuilds the store."""
    transform = family_file(FAMILY_HEADER + """
    from mistgen.transforms import Transform

    @TRANSFORMS.register
    class Twice(Transform):
        name = "twice"
        def forward(self, v, side):
            return 2 * v
        def inverse(self, v, side):
            return v / 2
    """, name="twice.py")
    load_family_files([transform])
    config = {"seed": 0, "shard_size": 10, "priors": {},
              "families": {"mixed": ["normal-dense-base", "laplace_channel-twice"]},
              "splits": {"s": {"families": "mixed", "count": 2, "combined": False}}}
    assert store_family_files(config, "s", "normal-dense-base") == []
    assert store_family_files(config, "s", "laplace_channel-twice") == sorted(
        [str(EXAMPLE), str(transform.resolve())])
    config["splits"]["s"]["combined"] = True
    assert store_family_files(config, "s", "all") == sorted(
        [str(EXAMPLE), str(transform.resolve())])


def test_use_family_files_names_them_for_every_job(monkeypatch):
    monkeypatch.delenv(FAMILY_FILES_ENV, raising=False)
    try:
        names = use_family_files({"family_files": ["workflow/families/laplace_channel.py"]},
                                 ROOT)
        assert names == ["laplace_channel"]
        assert os.environ[FAMILY_FILES_ENV] == str(EXAMPLE)
    finally:
        unload_family_files([EXAMPLE])


def test_use_family_files_refuses_a_broken_file_as_a_config_error(family_file):
    path = family_file(A_FAMILY.format(name="normal-dense", bias=0.0))
    with pytest.raises(ConfigError, match=rf"family_files: {path}, line \d+: .*'normal-dense'"):
        use_family_files({"family_files": [str(path)]}, ROOT)


def test_a_family_loaded_in_python_reaches_the_build_workers(example, tmp_path, monkeypatch):
    monkeypatch.delenv(FAMILY_FILES_ENV, raising=False)
    kw = dict(specs=["laplace_channel-asinh"], count=6, shard_size=3, dim_range=(2, 2),
              n_range=(20, 30), progress=False)
    two = mistgen.build_meta_dataset(tmp_path / "two.zarr", workers=2, **kw)
    one = mistgen.build_meta_dataset(tmp_path / "one.zarr", workers=1, **kw)
    assert np.array_equal(two[5].x, one[5].x) and two.index.mi.values.tolist() == one.index.mi.values.tolist()


def test_a_family_that_records_more_than_its_prior_takes_its_draws_back(family_file,
                                                                           tmp_path):
    body = A_FAMILY.format(name="recording", bias=0.0).replace(
        'return {"rho": self.draw(rng, "rho", prior)}',
        'rho = self.draw(rng, "rho", prior)\n'
        '            return {"rho": rho, "mi_per_pair": -0.5 * np.log(1 - rho ** 2)}')
    load_family_files([family_file(body)])
    drawn = mistgen.sample("recording-base", 20, 1, 1, seed=0)
    assert "mi_per_pair" in drawn.params
    assert mistgen.sample("recording-base", 20, 1, 1, seed=0, params=drawn.params).mi == drawn.mi
    store = mistgen.build_meta_dataset(tmp_path / "r.zarr", ["recording-base"], 4,
                                       dim_range=(1, 1), workers=1, progress=False)
    assert mistgen.verify_store(store.path).ok


def test_a_new_process_loads_the_files_of_the_environment(tmp_path):
    """What a workflow job or a Dask worker does: its first spec loads the files."""
    env = {**os.environ, FAMILY_FILES_ENV: str(EXAMPLE), "PYTHONPATH": str(ROOT)}
    code = "import mistgen; print(mistgen.sample('laplace_channel-base', 10, 1, 1, seed=0).mi)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) > 0


def snakemake_dry_run(config, tmp_path, name):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k != FAMILY_FILES_ENV}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"),
         "-d", str(tmp_path), "--configfile", str(path)],
        capture_output=True, text=True, cwd=ROOT, env=env)


@pytest.fixture(scope="module")
def test_config():
    return yaml.safe_load((ROOT / "workflow/configs/test.yaml").read_text())


def test_one_config_line_adds_the_family_jobs(tmp_path, test_config):
    from test_workflow import job_counts

    base = snakemake_dry_run(test_config, tmp_path, "base")
    config = {**test_config, "family_files": ["workflow/families/laplace_channel.py"],
              "families": {**test_config["families"],
                           "test_ood": test_config["families"]["test_ood"]
                           + ["laplace_channel-asinh"]}}
    more = snakemake_dry_run(config, tmp_path, "more")
    assert base.returncode == 0 and more.returncode == 0, more.stderr[-3000:]
    log = more.stdout + more.stderr
    assert "data/meta/test_ood/laplace_channel-asinh.zarr" in log
    assert "results/main/parts/KSG/test_ood/laplace_channel-asinh.nc" in log
    before, after = job_counts(base.stdout + base.stderr), job_counts(log)
    assert after["generate"] == before["generate"] + 1
    assert after["benchmark"] > before["benchmark"]


def test_dry_run_without_the_file_line_names_the_unknown_family(tmp_path, test_config):
    config = {**test_config, "families": {**test_config["families"],
                                          "test_ood": ["laplace_channel-base"]}}
    result = snakemake_dry_run(config, tmp_path, "unknown")
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert "spec 'laplace_channel-base' does not start with a known family" in log


def test_dry_run_refuses_a_broken_family_file(tmp_path, test_config):
    broken = tmp_path / "broken.py"
    broken.write_text("from mistgen.registry import FAMILIES\n\nclass Broken(:\n    pass\n")
    result = snakemake_dry_run({**test_config, "family_files": [str(broken)]}, tmp_path,
                               "broken")
    assert result.returncode != 0
    assert f"family_files: {broken}, line 3: syntax error" in result.stdout + result.stderr
    missing = snakemake_dry_run({**test_config, "family_files": ["workflow/families/none.py"]},
                                tmp_path, "missing")
    assert missing.returncode != 0
    assert (f"family_files: family file '{ROOT / 'workflow/families/none.py'}': no such file"
            in missing.stdout + missing.stderr)
