# Stage 2: modalities. Flows fitted to a modality's data warp base stores built with the
# modality's dims into data/meta/<split>@<modality>/<family>.zarr (labels unchanged).


def modality_entry(name):
    """The modality's settings for mistgen (without the study's own keys)."""
    return {k: v for k, v in config["modalities"][name].items() if k != "figure_split"}


def figure_store(modality, root):
    split = config["modalities"][modality].get("figure_split", "train")
    return f"{root}/{families_of(split)[0]}.zarr"


def modality_file(name):
    path = Path(modality_entry(name)["path"])
    return str(path if path.is_absolute() else Path(workflow.basedir) / path)


rule fit_flows:
    input:
        lambda w: modality_file(w.modality),
    output:
        "data/flows/{modality}.pt",
    params:
        entry=lambda w: modality_entry(w.modality),
        base_dir=workflow.basedir,
    priority: 40
    threads: 1
    log:
        "logs/flows/{modality}.log",
    script:
        "../scripts/fit_flows.py"


rule modality_base:
    output:
        directory("data/modality_base/{modality}/{split}/{family}.zarr"),
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    params:
        entry=lambda w: modality_entry(w.modality),
        base_dir=workflow.basedir,
        split_config=lambda w: config["splits"][w.split],
        priors=config.get("priors", {}),
        seed=config["seed"],
        shard_size=config.get("shard_size", 500),
    priority: 30
    threads: 1
    log:
        "logs/modality_base/{modality}/{split}/{family}.log",
    script:
        "../scripts/modality_base.py"


rule warp:
    input:
        base="data/modality_base/{modality}/{split}/{family}.zarr",
        flows="data/flows/{modality}.pt",
    output:
        directory("data/meta/{split}@{modality}/{family}.zarr"),
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    priority: 30
    threads: 1
    log:
        "logs/warp/{modality}/{split}/{family}.log",
    script:
        "../scripts/warp.py"


rule modality_figure:
    input:
        warped=lambda w: figure_store(
            w.modality, f"data/meta/{config['modalities'][w.modality].get('figure_split', 'train')}@{w.modality}"),
        base=lambda w: figure_store(
            w.modality, f"data/modality_base/{w.modality}/{config['modalities'][w.modality].get('figure_split', 'train')}"),
    output:
        report("results/modalities/{modality}.png", caption="../report/modality.rst",
               category="Modalities"),
    params:
        entry=lambda w: modality_entry(w.modality),
        base_dir=workflow.basedir,
    log:
        "logs/modality_figure/{modality}.log",
    script:
        "../scripts/modality_figure.py"
