# Stage 4: every estimator on every test store, as separate jobs; then one Dataset per run.


rule benchmark:
    input:
        unpack(estimator_inputs),
    output:
        "results/{run}/parts/{estimator}/{split}/{family}.nc",
    params:
        estimator=lambda w: ESTIMATORS[w.estimator],
        level=lambda w: interval_level(w.estimator),
        seed=config["seed"],
    threads: 1
    log:
        "logs/benchmark/{run}/{estimator}/{split}/{family}.log",
    benchmark:
        "logs/times/benchmark/{run}/{estimator}/{split}/{family}.tsv"
    conda:
        ENV
    script:
        "../scripts/benchmark.py"


rule combine:
    input:
        lambda w: run_parts(w.run),
    output:
        "results/{run}/estimates.nc",
    log:
        "logs/combine/{run}.log",
    conda:
        ENV
    script:
        "../scripts/combine.py"


# Conditional runs: estimators of I(X;Y|Z) on conditional stores, one job per (estimator, split).
rule benchmark_conditional:
    input:
        unpack(conditional_estimator_inputs),
    output:
        "results/conditional/{run}/parts/{estimator}/{split}.nc",
    wildcard_constraints:
        split=r"[A-Za-z0-9_]+",
    params:
        estimator=lambda w: ESTIMATORS[w.estimator],
    threads: 1
    log:
        "logs/benchmark_conditional/{run}/{estimator}/{split}.log",
    benchmark:
        "logs/times/benchmark_conditional/{run}/{estimator}/{split}.tsv"
    conda:
        ENV
    script:
        "../scripts/benchmark_conditional.py"
