# Stage 3: MIST training. A model entry may start from another (`init`): staged training
# is a chain of entries. A mist_qr entry with `calibrate` gets its interval factors fitted.
# A `conditional_models` entry trains the conditional (I(X;Y|Z)) network from a mist model.


rule train:
    input:
        train=lambda w: stores_of(MODELS[w.model]["train"]),
        val=lambda w: stores_of(MODELS[w.model]["val"]),
        init=lambda w: ([model_checkpoint(MODELS[w.model]["init"])]
                        if "init" in MODELS[w.model] else []),
    output:
        checkpoint="models/{model}/checkpoint.safetensors",
        metrics="models/{model}/metrics.json",
        curves=report("models/{model}/curves.png", caption="../report/curves.rst",
                      category="Training"),
    params:
        # the entry less `calibrate`, which makes the calibrated copy, not this checkpoint
        model=lambda w: {k: v for k, v in MODELS[w.model].items() if k != "calibrate"},
        seed=config["seed"],
    priority: 100
    # the entry's threads are torch's (part of the recipe); here they only reserve cores
    threads: lambda w: MODELS[w.model]["threads"]
    log:
        "logs/train/{model}.log",
    benchmark:
        "logs/times/train/{model}.tsv"
    conda:
        ENV
    script:
        "../scripts/train.py"


rule calibrate:
    input:
        checkpoint="models/{model}/checkpoint.safetensors",
        stores=lambda w: stores_of(MODELS[w.model]["calibrate"]),
    output:
        "models/{model}/calibrated.safetensors",
    threads: 1
    log:
        "logs/calibrate/{model}.log",
    benchmark:
        "logs/times/calibrate/{model}.tsv"
    conda:
        ENV
    script:
        "../scripts/calibrate.py"


rule train_conditional:
    input:
        unpack(conditional_inputs),
    output:
        checkpoint="models/conditional/{model}/checkpoint.safetensors",
        metrics="models/conditional/{model}/metrics.json",
    params:
        model=lambda w: CONDITIONAL[w.model],
        seed=config["seed"],
    threads: lambda w: CONDITIONAL[w.model]["threads"]
    log:
        "logs/train_conditional/{model}.log",
    benchmark:
        "logs/times/train_conditional/{model}.tsv"
    conda:
        ENV
    script:
        "../scripts/train_conditional.py"
