"""The Snakemake study: dry-runs of every profile, config validation, jobs follow the config."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def snakemake(*args, cwd):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-d", str(cwd), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a dry-run: rule -> number of jobs."""
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def write_config(path, config):
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def default_config():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("profile", [None, "paper", "test"])
def test_dry_run(tmp_path, profile):
    args = ["-n"] + (["--profile", str(ROOT / "workflow/profiles" / profile)] if profile else [])
    result = snakemake(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    assert counts["generate"] > 0 and counts["benchmark"] > 0 and counts["all"] == 1


def test_paper_profile_has_paper_scale(tmp_path):
    cfg = yaml.safe_load((ROOT / "workflow/configs/paper.yaml").read_text())
    per_family = cfg["splits"]["train"]["count"]
    assert per_family * len(cfg["families"]["train"]) >= 625_000
    assert cfg["splits"]["test_id"]["n_grid"] == {"start": 10, "stop": 500, "num": 20}
    assert cfg["splits"]["test_id"]["repeats"] == 9


def test_adding_a_family_adds_jobs(tmp_path, default_config):
    base = snakemake("-n", "--configfile", str(write_config(tmp_path / "a.yaml", default_config)),
                     cwd=tmp_path)
    default_config["families"]["test_ood"].append("student-identity-spiral")
    more = snakemake("-n", "--configfile", str(write_config(tmp_path / "b.yaml", default_config)),
                     cwd=tmp_path)
    assert base.returncode == 0 and more.returncode == 0, more.stderr[-3000:]
    before, after = job_counts(base.stdout + base.stderr), job_counts(more.stdout + more.stderr)
    assert after["generate"] == before["generate"] + 1
    # every run over test_ood gains one job per estimator: the main run, and each
    # modality's run (its study estimators plus its fine-tuned MIST) over test_ood@<modality>
    modalities = list(default_config["modalities"])
    per_modality = len(default_config["modality_study"]["estimators"]) + 1
    n_new = len(default_config["runs"]["main"]["estimators"]) + per_modality * len(modalities)
    assert after["benchmark"] == before["benchmark"] + n_new
    assert after["warp"] == before["warp"] + len(modalities)
    assert "data/meta/test_ood/student-identity-spiral.zarr" in more.stdout + more.stderr


def test_adding_a_split_adds_jobs(tmp_path, default_config):
    default_config["splits"]["test_wide"] = {
        "families": ["normal-dense-base"], "n_grid": [50], "repeats": 2,
        "dim_range": [4, 16]}
    default_config["runs"]["main"]["splits"].append("test_wide")
    result = snakemake("-n", "--configfile", str(write_config(tmp_path / "c.yaml", default_config)),
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data/meta/test_wide/normal-dense-base.zarr" in result.stdout + result.stderr


@pytest.mark.parametrize("edit, message", [
    (lambda c: c.update(sedd=1), "sedd"),
    (lambda c: c["splits"]["train"].update(cuont=5), "cuont"),
    (lambda c: c["splits"]["train"].update(count=-5), "-5"),
    (lambda c: c["splits"]["train"].update(priors={"normal-dense": {"of_diag": [0, 1]}}),
     "splits.train.priors, splits.train (store normal-dense-base), splits.train (store "
     "normal-dense-halfcube) and 1 more: family 'normal-dense' has no parameter 'of_diag'"),
    (lambda c: c["estimators"]["KSG"].update({"class": "KNN"}), "KNN"),
    (lambda c: c["modalities"].update(main=dict(next(iter(c["modalities"].values())))),
     "modalities.main: the modality study names its fine-tuned model, estimator and run "
     "after it, and runs.main exists"),
    (lambda c: c["modality_study"]["finetune"].update(max_step=5),
     "modality_study.finetune: Additional properties are not allowed ('max_step'"),
    (lambda c: c["modalities"].update(conditional=dict(next(iter(c["modalities"].values())))),
     "and runs.conditional is results/conditional/"),
    (lambda c: c.update(conditional_models={"cmi": {"init": "nope", "steps": 2}}),
     "conditional_models.cmi.init: unknown model 'nope'"),
    (lambda c: c.update(conditional_models={"cmi": {"init": "mist", "steps": 2,
                                                     "settings": {"seed": 3}}}),
     "conditional_models.cmi.settings: seed belong to the entry itself"),
    (lambda c: c.update(conditional_models={"cmi": {"init": "mist", "steps": 2,
                                                     "train": "nowhere"}}),
     "conditional_models.cmi.train: unknown conditional split 'nowhere'"),
    (lambda c: c.update(conditional_models={"cmi": {"init": "mist", "steps": 2,
                                                     "settings": {"n_rnage": [5, 9]}}}),
     "n_rnage"),
    (lambda c: c["conditional_splits"].update(cs={"specs": ["normal-fork"], "count": 4}),
     "conditional_splits.cs: unknown conditional spec 'normal-fork'"),
    (lambda c: c["conditional_splits"].update(cs={"specs": ["normal-chain-swirl"],
                                                  "count": 4}),
     "unknown transform 'swirl'"),
    (lambda c: c["conditional_splits"].update(cs={"specs": ["normal-chain"], "count": 4,
                                                  "n_grid": [50]}),
     "conditional_splits.cs: count=4 disagrees with the grid"),
    (lambda c: c["conditional_splits"].update(cs={"specs": ["normal-chain"], "count": 4})
     or c.update(conditional_models={"cmi": {"init": "mist", "steps": 2, "train": "cs",
                                                    "settings": {"n_range": [50, 90]}}}),
     "conditional_models.cmi.settings: n_range would be ignored: the train store 'cs'"),
    (lambda c: c["conditional_runs"]["cmi"].update(splits=["nowhere"]),
     "conditional_runs.cmi.splits: unknown conditional split 'nowhere'"),
    (lambda c: c["conditional_runs"]["cmi"].update(estimators=["MINE"]),
     "conditional_runs.cmi.estimators: 'MINE' is MINE, which does not estimate I(X;Y|Z)"),
    (lambda c: c["conditional_runs"]["cmi"].update(estimators=["MIST-shipped"]),
     "conditional_runs.cmi.estimators: 'MIST-shipped' is an I(X;Y) MIST"),
    (lambda c: c["runs"]["main"]["estimators"].append("MIST-CMI-shipped"),
     "runs.main.estimators: 'MIST-CMI-shipped' estimates I(X;Y|Z) only"),
    (lambda c: c["modality_study"]["estimators"].append("MIST-CMI-shipped"),
     "modality_study.estimators: 'MIST-CMI-shipped' estimates I(X;Y|Z) only"),
    (lambda c: c["conditional_splits"]["cmi_small"].update(dim_grid=[1, [2, 2, 20]]),
     "conditional_runs.cmi: split 'cmi_small' reaches 20 columns in a group, but "
     "MIST-CMI-shipped (the shipped mist_cmi) was trained on at most 16"),
    (lambda c: c["runs"].update(conditional=c["runs"]["main"]),
     "runs.conditional: the name is taken by results/conditional/"),
    (lambda c: c.update(conditional_models={"mist": {"init": "mist_qr", "steps": 2}}),
     "conditional_models.mist: the name is also a models entry"),
    (lambda c: c.update(interval_level=0.99),
     "interval_level: 0.99 needs MIST-QR's quantiles at tau = 0.005 and 0.995"),
    (lambda c: c["runs"]["main"]["splits"].append("test_id"),
     "runs.main.splits: ['test_id', 'test_ood', 'test_id'] has non-unique elements"),
])
def test_bad_config_fails_fast_naming_the_problem(tmp_path, default_config, edit, message):
    edit(default_config)
    result = snakemake("-n", "--configfile", str(write_config(tmp_path / "bad.yaml", default_config)),
                       cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "data").exists()


def test_a_conditional_split_is_built_and_read_by_its_training_job(tmp_path, default_config):
    default_config["conditional_splits"].update({
        "cmi_train": {"specs": ["normal-chain", "student-collider-halfcube"], "count": 40},
        "cmi_val": {"specs": ["normal-factor"], "n_grid": [100], "dim_grid": [[1, 2, 3]]}})
    default_config["conditional_models"] = {"cmi": {"init": "mist", "steps": 2,
                                                    "train": "cmi_train", "val": "cmi_val"}}
    result = snakemake("-n", "--configfile", str(write_config(tmp_path / "d.yaml", default_config)),
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    assert job_counts(text)["generate_conditional"] == 3   # with the default cmi_small
    job = text.split("rule train_conditional:")[1].split("rule ")[0]
    inputs = job.split("input:")[1].splitlines()[0]
    for path in ("models/mist/checkpoint.safetensors", "data/conditional/cmi_train.zarr",
                 "data/conditional/cmi_val.zarr"):
        assert path in inputs


def test_the_default_study_benchmarks_conditional_mi_with_the_shipped_network(tmp_path):
    result = snakemake("-n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    counts = job_counts(text)
    assert (counts["generate_conditional"], counts["benchmark_conditional"],
            counts["report_conditional"]) == (1, 3, 1)
    jobs = [b for b in text.split("rule benchmark_conditional:")[1:]
            if "estimator=MIST-CMI-shipped" in b]
    inputs = jobs[0].split("input:")[1].splitlines()[0]
    assert str(ROOT / "mistmodel/checkpoints/mist_cmi.safetensors") in inputs
    assert "data/conditional/cmi_small.zarr" in inputs


def test_shipped_checkpoints_are_inputs_of_their_benchmark_jobs(tmp_path):
    # A new shipped checkpoint must rerun the jobs that use it: it is a declared input.
    result = snakemake("-n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    jobs = [block for block in text.split("rule benchmark:")[1:]
            if "wildcards: run=main, estimator=MIST-" in block]
    shipped = {"MIST-shipped": "mist.safetensors", "MIST-QR-shipped": "mist_qr.safetensors"}
    for name, ckpt in shipped.items():
        mine = [b for b in jobs if f"estimator={name}," in b]
        assert mine, f"no benchmark job for {name} in the dry-run"
        inputs = [b.split("input:")[1].splitlines()[0] for b in mine]
        assert all(str(ROOT / "mistmodel" / "checkpoints" / ckpt) in line for line in inputs)


def test_what_the_study_writes_is_ignored_by_git(tmp_path):
    # every output of the default study's jobs, its logs and times, and the report
    result = snakemake("-n", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    outputs = {p.strip() for line in re.findall(r"^\s+(?:output|log|benchmark): (.+)$", text,
                                                   flags=re.MULTILINE) for p in line.split(",")}
    outputs |= {"report.html", ".snakemake/log/x.log"}
    assert len(outputs) > 300
    check = subprocess.run(["git", "check-ignore", "--no-index", "--verbose", "--non-matching",
                            "--stdin"], input="\n".join(sorted(outputs)), capture_output=True,
                           text=True, cwd=ROOT)
    # each line: "<source>:<line>:<pattern>\t<path>"; "::" matches nothing, "!" re-includes
    tracked = [line.split("\t")[1] for line in check.stdout.splitlines()
               if line.split("\t")[0].split(":", 2)[2].startswith("!") or line.startswith("::")]
    assert not tracked, tracked[:10]


@pytest.mark.parametrize("trial", [False, True])
def test_release_config_is_a_chain_of_stages(tmp_path, trial):
    # alone, and with the trial stage layered over it (correlated_sides_trial.yaml): two
    # more stages, chained to the last shipped ones, on stores drawn under split priors
    configs = ["release.yaml"] + (["correlated_sides_trial.yaml"] if trial else [])
    result = snakemake("-n", "--configfile",
                       *(str(ROOT / "workflow/configs" / c) for c in configs), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout + result.stderr)
    assert (counts["train"], counts["calibrate"], counts["train_conditional"],
            counts["generate_conditional"]) == ((23, 5, 1, 1) if trial else (21, 4, 1, 1))
    assert "benchmark" not in counts
    jobs = (result.stdout + result.stderr).split("rule train:")[1:]
    inputs = {block.split("wildcards: model=")[1].split()[0]: block.split("input:")[1].splitlines()[0]
              for block in jobs}
    # each stage's job reads the checkpoint of the stage before it; the first reads none
    assert "models/mist_s5/checkpoint.safetensors" in inputs["mist_s6"]
    assert "models/mist_qr_s4/checkpoint.safetensors" in inputs["mist_qr_s5"]
    assert "models/mist_s8/checkpoint.safetensors" in inputs["mist_s9"]
    assert "models/mist_s11/checkpoint.safetensors" in inputs["mist_s12"]
    conditional = (result.stdout + result.stderr).split("rule train_conditional:")[1]
    assert "models/mist_s12/checkpoint.safetensors" in conditional.split("input:")[1].splitlines()[0]
    # a calibrated stage hands on its calibrated checkpoint
    assert "models/mist_qr_s6/calibrated.safetensors" in inputs["mist_qr_s7"]
    assert "models/mist_qr_s7/calibrated.safetensors" in inputs["mist_qr_s8"]
    assert "models/mist_qr_s8/checkpoint.safetensors" in inputs["mist_qr_s9"]
    assert ("mist_s13" in inputs) == trial
    if trial:
        assert "models/mist_s12/checkpoint.safetensors" in inputs["mist_s13"]
        assert "models/mist_qr_s9/calibrated.safetensors" in inputs["mist_qr_s10"]
        assert "data/meta/s13_corr/all.zarr" in inputs["mist_s13"]
    assert "checkpoint" not in inputs["mist_s1"]


def test_the_workflow_profile_applies_as_the_docs_say(tmp_path):
    # Snakemake looks for profiles/default beside the Snakefile or the working directory,
    # not under workflow/: the docs name the option that applies it
    flag = "--workflow-profile workflow/profiles/default"
    assert flag in (ROOT / "docs" / "study.md").read_text()
    result = snakemake("-n", *flag.split(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using workflow specific profile workflow/profiles/default" in result.stderr


def test_training_threads_are_the_entry_s_whatever_the_cores(tmp_path):
    config = yaml.safe_load((ROOT / "workflow/configs/test.yaml").read_text())
    config["models"]["mist_qr"]["threads"] = 2   # mist (and its fine-tune) say nothing: 1
    config["conditional_models"]["mist_cmi"]["threads"] = 2
    result = snakemake("-n", "--cores", "3", "--configfile",
                       str(write_config(tmp_path / "t.yaml", config)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    text = result.stdout + result.stderr
    jobs = {block.split("wildcards: model=")[1].split()[0]: block.split("\n[")[0]
            for rule in ("train", "train_conditional")
            for block in text.split(f"rule {rule}:")[1:]}
    assert sorted(jobs) == ["mist", "mist_bc", "mist_cmi", "mist_qr"]
    threads = {name: re.findall(r"threads: (\d+)", job) for name, job in jobs.items()}
    assert threads == {"mist": [], "mist_bc": [], "mist_cmi": ["2"], "mist_qr": ["2"]}


def test_a_conditional_model_reads_the_files_of_its_transforms(tmp_path):
    family_file = tmp_path / "doubling.py"
    family_file.write_text(
        "from mistgen.registry import TRANSFORMS\n"
        "from mistgen.transforms import Transform\n\n\n"
        "@TRANSFORMS.register\n"
        "class Doubling(Transform):\n"
        "    name = 'doubling_it'\n\n"
        "    def forward(self, v, side):\n"
        "        return 2 * v\n\n"
        "    def inverse(self, v, side):\n"
        "        return v / 2\n")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["family_files"] = [str(family_file)]
    config["conditional_models"] = {"cmi": {"init": "mist", "steps": 2, "settings": {
        "transforms": ["base", "halfcube-doubling_it"]}}}
    result = snakemake("-n", "--configfile", str(write_config(tmp_path / "f.yaml", config)),
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    job = (result.stdout + result.stderr).split("rule train_conditional:")[1]
    assert str(family_file) in job.split("input:")[1].splitlines()[0]


def test_a_level_without_conformal_factors_is_said_at_the_dry_run(tmp_path, default_config):
    default_config["interval_level"] = 0.85
    result = snakemake("-n", "--configfile",
                       str(write_config(tmp_path / "l.yaml", default_config)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: interval_level: MIST-QR-shipped (the shipped mist_qr checkpoint; " \
           "runs.main) has conformal factors at levels 0.5, 0.8, 0.9, 0.95 only" in result.stderr
