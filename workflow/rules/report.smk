# Stage 5: summaries, figures (with report captions) and the headline tables.


rule summarize:
    input:
        "results/{run}/estimates.nc",
    output:
        "results/{run}/summary.nc",
    log:
        "logs/summarize/{run}.log",
    conda:
        ENV
    script:
        "../scripts/summarize.py"


rule figures:
    input:
        estimates="results/{run}/estimates.nc",
        summary="results/{run}/summary.nc",
    output:
        error_vs_n=report("results/{run}/figures/error_vs_n.png",
                          caption="../report/error_vs_n.rst", category="{run}",
                          subcategory="Accuracy"),
        error_vs_dim=report("results/{run}/figures/error_vs_dim.png",
                            caption="../report/error_vs_dim.rst", category="{run}",
                            subcategory="Accuracy"),
        predicted_vs_true=report("results/{run}/figures/predicted_vs_true.png",
                                 caption="../report/predicted_vs_true.rst", category="{run}",
                                 subcategory="Accuracy"),
        coverage=report("results/{run}/figures/coverage.png",
                        caption="../report/coverage.rst", category="{run}",
                        subcategory="Uncertainty"),
        timing=report("results/{run}/figures/timing.png",
                      caption="../report/timing.rst", category="{run}", subcategory="Speed"),
    log:
        "logs/figures/{run}.log",
    conda:
        ENV
    script:
        "../scripts/figures.py"


rule headline:
    input:
        runs=expand("results/{run}/summary.nc", run=list(RUNS)),
        conditional=expand("results/conditional/{run}/summary.nc",
                           run=list(config["conditional_runs"])),
    output:
        report("results/headline.md", caption="../report/headline.rst", category="Tables"),
    params:
        runs=list(RUNS),
        conditional_runs=list(config["conditional_runs"]),
    log:
        "logs/headline.log",
    conda:
        ENV
    script:
        "../scripts/headline.py"


rule report_conditional:
    input:
        lambda w: conditional_run_parts(w.run),
    output:
        estimates="results/conditional/{run}/estimates.nc",
        summary="results/conditional/{run}/summary.nc",
        figure=report("results/conditional/{run}/error_vs_n.png",
                      caption="../report/conditional_error_vs_n.rst",
                      category="conditional {run}", subcategory="Accuracy"),
    log:
        "logs/report_conditional/{run}.log",
    conda:
        ENV
    script:
        "../scripts/report_conditional.py"
