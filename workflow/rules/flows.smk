# Stage 2: modalities. Flows fitted to a modality's data warp base stores built with the
# modality's dims into data/meta/<split>@<modality>/<family>.zarr (labels unchanged).


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
    benchmark:
        "logs/times/fit_flows/{modality}.tsv"
    conda:
        ENV
    script:
        "../scripts/fit_flows.py"


rule modality_base:
    input:
        family_files=lambda w: store_family_files(config, w.split, w.family),
    output:
        directory("data/modality_base/{modality}/{split}/{family}.zarr"),
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    params:
        entry=lambda w: modality_entry(w.modality),
        base_dir=workflow.basedir,
        recipe=lambda w: modality_base_recipe(config, w.split, w.family),
    priority: 30
    threads: 1
    log:
        "logs/modality_base/{modality}/{split}/{family}.log",
    benchmark:
        "logs/times/modality_base/{modality}/{split}/{family}.tsv"
    conda:
        ENV
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
    benchmark:
        "logs/times/warp/{modality}/{split}/{family}.tsv"
    conda:
        ENV
    script:
        "../scripts/warp.py"


rule modality_figure:
    input:
        warped=lambda w: figure_store(
            w.modality, f"data/meta/{config['modalities'][w.modality]['figure_split']}@{w.modality}"),
        base=lambda w: figure_store(
            w.modality, f"data/modality_base/{w.modality}/{config['modalities'][w.modality]['figure_split']}"),
    output:
        report("results/modalities/{modality}.png", caption="../report/modality.rst",
               category="Modalities"),
    params:
        entry=lambda w: modality_entry(w.modality),
        base_dir=workflow.basedir,
    log:
        "logs/modality_figure/{modality}.log",
    conda:
        ENV
    script:
        "../scripts/modality_figure.py"
