# Stage 3: MIST training.


rule train:
    input:
        train=lambda w: [s for split in MODELS[w.model]["train"] for s in split_stores(split)],
        val=lambda w: [s for split in MODELS[w.model]["val"] for s in split_stores(split)],
        init=lambda w: ([model_checkpoint(MODELS[w.model]["init"])]
                        if MODELS[w.model].get("init") else []),
    output:
        checkpoint="models/{model}/best.pt",
        metrics="models/{model}/metrics.json",
        curves=report("models/{model}/curves.png", caption="../report/curves.rst",
                      category="Training"),
    params:
        model=lambda w: MODELS[w.model],
        seed=config["seed"],
    priority: 100
    threads: lambda w: MODELS[w.model].get("threads", 1024)  # default: all cores (scaled down)
    log:
        "logs/train/{model}.log",
    script:
        "../scripts/train.py"
