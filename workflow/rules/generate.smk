# Stage 1: meta-datasets. One store per (split, family), so adding a family adds jobs.


rule generate:
    output:
        directory("data/meta/{split}/{family}.zarr"),
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    params:
        split_config=lambda w: config["splits"][w.split],
        priors=config.get("priors", {}),
        seed=config["seed"],
        shard_size=config.get("shard_size", 500),
        scheduler=config.get("dask_scheduler"),
    priority: 50
    threads: 1
    log:
        "logs/generate/{split}/{family}.log",
    script:
        "../scripts/generate.py"
