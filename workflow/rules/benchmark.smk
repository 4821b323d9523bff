# Stage 4: every estimator on every test store, as separate jobs; then one Dataset per run.


rule benchmark:
    input:
        unpack(estimator_inputs),
    output:
        "results/{run}/parts/{estimator}/{split}/{family}.nc",
    params:
        estimator=lambda w: ESTIMATORS[w.estimator],
        level=config.get("interval_level", 0.9),
        seed=config["seed"],
    threads: 1
    log:
        "logs/benchmark/{run}/{estimator}/{split}/{family}.log",
    script:
        "../scripts/benchmark.py"


rule combine:
    input:
        lambda w: run_parts(w.run),
    output:
        "results/{run}/estimates.nc",
    log:
        "logs/combine/{run}.log",
    script:
        "../scripts/combine.py"
