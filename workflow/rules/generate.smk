# Stage 1: meta-datasets. One store per (split, family), or one per combined split.


rule generate:
    input:
        family_files=lambda w: store_family_files(config, w.split, w.family),
    output:
        directory("data/meta/{split}/{family}.zarr"),
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    params:
        recipe=lambda w: store_recipe(config, w.split, w.family),
        split_config=lambda w: store_split_config(config, w.split, w.family),
    priority: 50
    threads: 1
    log:
        "logs/generate/{split}/{family}.log",
    benchmark:
        "logs/times/generate/{split}/{family}.tsv"
    conda:
        ENV
    script:
        "../scripts/generate.py"


# Stores of (X, Y, Z) samples for the conditional network: one per conditional_splits entry.
rule generate_conditional:
    input:
        family_files=lambda w: conditional_family_files(config, w.split),
    output:
        directory("data/conditional/{split}.zarr"),
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    params:
        recipe=lambda w: conditional_store_recipe(config, w.split),
        split_config=lambda w: config["conditional_splits"][w.split],
    priority: 50
    threads: 1
    log:
        "logs/generate_conditional/{split}.log",
    benchmark:
        "logs/times/generate_conditional/{split}.tsv"
    conda:
        ENV
    script:
        "../scripts/generate_conditional.py"
