"""Everything the jobs would find wrong with a study config, found before any job runs.

The Snakefile calls :func:`check_config` right after the schema validation, so a bad
config stops ``snakemake -n`` with one line per problem, each naming the key and the value
(or the file and the row): unknown names between sections (families, splits, models,
estimators, modalities), every store's design and priors (through ``mistgen``'s own
checks: family specs, shapes such as ``2pair`` at d = 1, ranges), the modality files
(NaN, constant columns, columns out of range, X/Y overlap) and their flow settings, the
estimators' settings (each estimator is constructed once), the training settings, and
the dims of every run's splits against the MIST estimators of the run.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from .stores import (base_split, conditional_store_recipe, families_of, n_grid, store_names,
                     store_recipe)
from .study import derived_study


class ConfigError(ValueError):
    """The study config asks for something its jobs cannot do."""


def _check_addresses(config: Mapping[str, Any]) -> None:
    """Two store addresses under one seed that differ but give the same datapoints are
    refused (``mistgen.design.check_split_names``)."""
    from mistgen.design import check_split_names

    by_seed: dict[int, list[str]] = {}
    recipes = [store_recipe(config, split, name) for split in config["splits"]
               for name in store_names(config, split)]
    recipes += [conditional_store_recipe(config, name) for name in config["conditional_splits"]]
    for recipe in recipes:
        by_seed.setdefault(recipe["seed"], []).append(recipe["split"])
    for addresses in by_seed.values():
        check_split_names(addresses)


def check_config(config: Mapping[str, Any], base_dir: str = ".") -> list[str]:
    """Raise :class:`ConfigError` listing every problem of ``config`` (validated against
    the schema first, so keys and types are already right); return what runs, but not as
    the config may expect (one line each, naming the key)."""
    problems: list[str] = []
    warnings: list[str] = []
    places: dict[str, list[str]] = {}   # a message -> where it was found (one line each)

    def check(where: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
            message = str(exc)
            if message not in places:
                places[message] = []
                problems.append(message)
            places[message].append(where)

    _check_names(config, problems)
    if not problems:   # the checks below follow the names
        models, estimators, runs = derived_study(config)
        plans: dict[tuple[str, str], Any] = {}   # built once, read again by the dims check
        # prior overrides, the config's and each split's (a store sees its families' only)
        check("priors", lambda: _check_priors(config["priors"]))
        for split, entry in config["splits"].items():
            check(f"splits.{split}.priors", lambda e=entry: _check_priors(e.get("priors")))
        for split in config["splits"]:
            for name in store_names(config, split):
                check(f"splits.{split} (store {name})",
                      lambda s=split, n=name: _plan(config, s, n, plans))
        for name, entry in config["modalities"].items():
            check(f"modalities.{name}", lambda n=name, e=entry: _check_modality(config, n, e,
                                                                               base_dir))
        for name, spec in config["estimators"].items():
            check(f"estimators.{name}", lambda s=spec: _check_estimator(s))
        for name, entry in models.items():
            check(f"models.{name}", lambda n=name, e=entry: _check_model(config, n, e, models))
        check("splits (addresses)", lambda: _check_addresses(config))
        for name in config["conditional_splits"]:
            check(f"conditional_splits.{name}", lambda n=name: _check_conditional_store(config, n))
        for name, entry in config["conditional_models"].items():
            check(f"conditional_models.{name}.settings",
                  lambda e=entry: _check_conditional_settings(e))
        for name, run in config["conditional_runs"].items():
            check(f"conditional_runs.{name}", lambda r=run: _check_conditional_run(config, r))
        if not problems:   # the dims of valid designs and estimators, the interval level
            _check_dims(config, models, estimators, runs, problems, plans)
            _check_interval_level(config, models, estimators, runs, problems, warnings)
    if problems:
        lines = [f"{_places(places[p])}: {p}" if p in places else p for p in problems]
        raise ConfigError("the study config cannot run:\n  " + "\n  ".join(lines))
    return warnings


def _places(wheres: list[str]) -> str:
    """Where one problem was found: up to three places, then how many more."""
    more = len(wheres) - 3
    return ", ".join(wheres[:3]) + (f" and {more} more" if more > 0 else "")


def _check_names(config: Mapping[str, Any], problems: list[str]) -> None:
    """Every name one section uses must exist in the section it points to."""
    splits, models = config["splits"], config["models"]
    modalities = config["modalities"]

    for name, entry in splits.items():
        listed = entry["families"] if isinstance(entry["families"], list) else []
        twice = sorted({spec for spec in listed if listed.count(spec) > 1})
        if twice:
            problems.append(f"splits.{name}.families lists {', '.join(map(repr, twice))} more "
                            "than once (each spec is one store and one row of the results)")
        grid = entry.get("n_grid")
        if isinstance(grid, Mapping) and len(set(n_grid(grid))) < len(n_grid(grid)):
            problems.append(f"splits.{name}.n_grid: {dict(grid)} rounds to repeated sample "
                            f"sizes {n_grid(grid)}; give fewer points (num) or a wider "
                            "[start, stop]")

    def split_known(where: str, split: str) -> None:
        base, _, modality = split.partition("@")
        if base not in splits:
            problems.append(f"{where}: unknown split {split!r}; splits: {sorted(splits)}")
        elif modality and modality not in modalities:
            problems.append(f"{where}: unknown modality {modality!r} in {split!r}; "
                            f"modalities: {sorted(modalities)}")

    for name, entry in splits.items():
        families = entry["families"]
        if isinstance(families, str) and families not in config["families"]:
            problems.append(f"splits.{name}.families: unknown family list {families!r}; "
                            f"families: {sorted(config['families'])}")
    for name, entry in models.items():
        for key in ("train", "val"):
            for split in entry[key]:
                split_known(f"models.{name}.{key}", split)
        if "init" in entry and entry["init"] not in models:
            problems.append(f"models.{name}.init: unknown model {entry['init']!r}; "
                            f"models: {sorted(models)}")
        for split in entry.get("calibrate", []):
            split_known(f"models.{name}.calibrate", split)
        if "calibrate" in entry:
            if entry["variant"] != "mist_qr":
                problems.append(f"models.{name}.calibrate: only a mist_qr model has intervals "
                                f"to calibrate, this one is {entry['variant']!r}")
    conditional = config["conditional_models"]
    for name in sorted(set(models) & set(conditional)):
        problems.append(f"conditional_models.{name}: the name is also a models entry; give "
                        "the conditional network another name")
    if "conditional" in config["runs"]:
        problems.append("runs.conditional: the name is taken by results/conditional/ (the "
                        "conditional runs); give the run another name")
    study = config.get("modality_study")
    for m in config["modalities"] if study else []:
        # the names a modality study derives for m must not hide the config's own entries
        taken = [(f"models.{study['base_model']}_{m}", f"{study['base_model']}_{m}" in models),
                 (f"estimators.MIST-{m}", f"MIST-{m}" in config["estimators"]),
                 (f"runs.{m}", m in config["runs"] or m == "conditional")]
        for where, clash in taken:
            what = "is results/conditional/" if where == "runs.conditional" else "exists"
            if clash:
                problems.append(f"modalities.{m}: the modality study names its fine-tuned "
                                f"model, estimator and run after it, and {where} {what}; "
                                "give the modality another name")
    for name, entry in conditional.items():
        own = sorted(set(entry.get("settings") or {}) & {"out", "init", "steps", "seed",
                                                          "threads"})
        if own:
            problems.append(f"conditional_models.{name}.settings: {', '.join(own)} "
                            "belong to the entry itself (or to the rule), not to settings")
        own = sorted(set(entry.get("settings") or {}) & {"train_store", "val_store"})
        if own:
            problems.append(f"conditional_models.{name}.settings: {', '.join(own)} are "
                            "named by the entry's train/val keys (conditional_splits names)")
        for key, unused in (("train", ("specs", "transforms", "n_range", "dim_range")),
                            ("val", ("val_count",))):
            if key not in entry:
                continue
            if entry[key] not in config["conditional_splits"]:
                problems.append(f"conditional_models.{name}.{key}: unknown conditional split "
                                f"{entry[key]!r}; conditional_splits: "
                                f"{sorted(config['conditional_splits'])}")
            ignored = sorted(set(entry.get("settings") or {}) & set(unused))
            if ignored:
                problems.append(f"conditional_models.{name}.settings: {', '.join(ignored)} "
                                f"would be ignored: the {key} store "
                                f"{entry[key]!r} decides them (set them in conditional_splits)")
        init = entry["init"]
        if init in models and models[init]["variant"] != "mist":
            problems.append(f"conditional_models.{name}.init: {init!r} is a "
                            f"{models[init]['variant']} model; the conditional network starts "
                            "from a point-estimate (mist) one")
        elif init not in models and (init not in conditional or init == name):
            problems.append(f"conditional_models.{name}.init: unknown model {init!r}; "
                            f"models: {sorted(models)}, conditional_models: "
                            f"{sorted(set(conditional) - {name})}")
    for name, spec in config["estimators"].items():
        if spec["class"] != "MIST" and ("model" in spec):
            problems.append(f"estimators.{name}.model: only a MIST estimator takes a model")
        if spec["class"] == "MIST" and spec["model"] != "default" and \
                spec["model"] not in models and spec["model"] not in conditional:
            problems.append(f"estimators.{name}.model: unknown model {spec['model']!r}; "
                            f"models: {sorted(models)}, conditional_models: "
                            f"{sorted(conditional)} or 'default' (shipped)")
    study = config.get("modality_study")
    if study:
        if study["base_model"] not in models:
            problems.append(f"modality_study.base_model: unknown model "
                            f"{study['base_model']!r}; models: {sorted(models)}")
        for key in ("train_split", "val_split"):
            split_known(f"modality_study.{key}", study[key])
        for split in study["test_splits"]:
            split_known("modality_study.test_splits", split)
        for est in study["estimators"]:
            if est not in config["estimators"]:
                problems.append(f"modality_study.estimators: unknown estimator {est!r}; "
                                f"estimators: {sorted(config['estimators'])}")
    for name, entry in modalities.items():
        split_known(f"modalities.{name}.figure_split", entry["figure_split"])
    for name, run in config["runs"].items():
        for split in run["splits"]:
            split_known(f"runs.{name}.splits", split)
        for est in run["estimators"]:
            if est not in config["estimators"]:
                problems.append(f"runs.{name}.estimators: unknown estimator {est!r}; "
                                f"estimators: {sorted(config['estimators'])}")
    study = config.get("modality_study") or {}
    pair_lists = [("modality_study.estimators",
                   study.get("estimators", []) if config["modalities"] else [])]
    pair_lists += [(f"runs.{name}.estimators", run["estimators"])
                   for name, run in config["runs"].items()]
    for where, names in pair_lists:
        for est in names:
            if est in config["estimators"] and _conditional_only(config["estimators"][est],
                                                                   conditional):
                problems.append(f"{where}: {est!r} estimates I(X;Y|Z) only; "
                                "use it in conditional_runs")
    for name, run in config["conditional_runs"].items():
        for split in run["splits"]:
            if split not in config["conditional_splits"]:
                problems.append(f"conditional_runs.{name}.splits: unknown conditional split "
                                f"{split!r}; conditional_splits: "
                                f"{sorted(config['conditional_splits'])}")
        for est in run["estimators"]:
            spec = config["estimators"].get(est)
            if spec is None:
                problems.append(f"conditional_runs.{name}.estimators: unknown estimator "
                                f"{est!r}; estimators: {sorted(config['estimators'])}")
            elif spec["class"] not in ("KSG", "CCA", "MIST"):
                problems.append(f"conditional_runs.{name}.estimators: {est!r} is "
                                f"{spec['class']}, which does not estimate I(X;Y|Z) (KSG, "
                                "CCA and MIST do)")
            elif spec["class"] == "MIST" and not _conditional_only(spec, conditional):
                problems.append(f"conditional_runs.{name}.estimators: {est!r} is an I(X;Y) "
                                "MIST; give it a conditional_models model or settings: "
                                "{variant: mist_cmi}")
    if not problems:
        _check_init_chains(models, problems)


def _conditional_only(spec: Mapping[str, Any], conditional: Mapping[str, Any]) -> bool:
    """Whether an estimators entry is MIST's conditional network (I(X;Y|Z) only)."""
    if spec["class"] != "MIST":
        return False
    if spec.get("model", "default") == "default":
        return (spec.get("settings") or {}).get("variant") == "mist_cmi"
    return spec["model"] in conditional


def _check_init_chains(models: Mapping[str, Any], problems: list[str]) -> None:
    for name in models:
        seen = [name]
        while "init" in models[seen[-1]]:
            nxt = models[seen[-1]]["init"]
            if nxt in seen:
                problems.append(f"models.{name}.init: the chain {' -> '.join(seen + [nxt])} "
                                "loops")
                break
            seen.append(nxt)


def _check_priors(priors: Mapping[str, Any] | None) -> None:
    """Every prior override (the config's, or a split's) names a known family and its
    parameters, used by a store or not (:func:`mistgen.sampling.check_priors`)."""
    from mistgen.sampling import check_priors

    check_priors(priors or None)


def _plan(config: Mapping[str, Any], split: str, name: str,
          plans: dict[tuple[str, str], Any] | None = None) -> Any:
    """The plan of store ``name`` of a base split, through mistgen's own checks of its
    design, priors and address (no data made); kept in ``plans`` when given."""
    from mistgen.design import make_design, make_plan

    plans = {} if plans is None else plans
    if (split, name) not in plans:
        recipe = store_recipe(config, split, name)
        design_args = {k: v for k, v in recipe.items()
                       if k not in ("specs", "seed", "split", "shard_size", "priors")}
        plans[split, name] = make_plan(make_design(recipe["specs"], **design_args),
                                       recipe["seed"], recipe["split"], recipe["priors"],
                                       recipe["shard_size"])
    return plans[split, name]


def _split_dims(config: Mapping[str, Any], split: str,
                plans: dict[tuple[str, str], Any]) -> tuple[int, int]:
    """The most columns of X and of Y among the datapoints of an I(X;Y) split, read off
    their addresses (:meth:`mistgen.design.Plan.drawn_dims`; no data made); a split
    warped to a modality has the modality's."""
    if "@" in split:
        entry = config["modalities"][split.split("@", 1)[1]]
        return len(entry["x_columns"]), len(entry["y_columns"])
    drawn = [_plan(config, split, name, plans).drawn_dims()
             for name in store_names(config, split)]
    return max(d[0] for d in drawn), max(d[1] for d in drawn)


def _mist_dims(spec: Mapping[str, Any], models: Mapping[str, Any],
               dims: Callable[[str], tuple[int, int]]) -> tuple[tuple[int, int], str] | None:
    """The most (dim_x, dim_y) a MIST estimators entry answers without refusing, and
    whose limit it is; None when it does not refuse (``out_of_range: warn``, or a card
    without dims)."""
    settings = spec.get("settings") or {}
    if settings.get("out_of_range") == "warn":
        return None
    if spec.get("model", "default") != "default":
        return _model_dims(models, spec["model"], dims)
    from mistmodel.checkpoint import read_card
    from mistmodel.mist import default_checkpoint

    variant = settings.get("variant", "mist")
    ranges = read_card(default_checkpoint(variant)).get("data_ranges") or {}
    if "dim_x" not in ranges or "dim_y" not in ranges:
        return None
    return (ranges["dim_x"][1], ranges["dim_y"][1]), f"the shipped {variant} checkpoint"


def _model_dims(models: Mapping[str, Any], name: str,
                dims: Callable[[str], tuple[int, int]]) -> tuple[tuple[int, int], str]:
    trained = [dims(s) for s in models[name]["train"]]
    return ((max(d[0] for d in trained), max(d[1] for d in trained)),
            f"model {name!r}: the most its training splits draw")


def _wider(splits: list[str], limit: tuple[int, int],
           dims: Callable[[str], tuple[int, int]]) -> list[str]:
    """``split (dim_x = 48 > 32)`` for each split whose datapoints go beyond ``limit``."""
    out = []
    for split in splits:
        over = [f"{key} = {d} > {hi}"
                for key, d, hi in zip(("dim_x", "dim_y"), dims(split), limit)
                if d > hi]
        if over:
            out.append(f"{split!r} ({', '.join(over)})")
    return out


def _check_dims(config: Mapping[str, Any], models: Mapping[str, Any],
                estimators: Mapping[str, Any], runs: Mapping[str, Any],
                problems: list[str], plans: dict[tuple[str, str], Any]) -> None:
    """A MIST refuses more columns than it was trained on: every split a MIST estimator
    runs on, and every split a MIST-QR model is calibrated on, must stay within them
    (unless the estimator's settings say ``out_of_range: warn``).  One line per
    (run, estimator) and per calibrated model, naming every split that goes beyond.
    ``plans``: the plans already built, by (split, store name); new ones are added."""
    known: dict[str, tuple[int, int]] = {}

    def dims(split: str) -> tuple[int, int]:
        if split not in known:
            known[split] = _split_dims(config, split, plans)
        return known[split]

    derived = set(runs) - set(config["runs"])
    for run_name, run in runs.items():
        where = (f"modality_study (run {run_name})" if run_name in derived
                 else f"runs.{run_name}")
        for est in run["estimators"]:
            spec = estimators[est]
            if spec["class"] != "MIST" or _conditional_only(spec, config["conditional_models"]):
                continue
            limited = _mist_dims(spec, models, dims)
            if limited is None:
                continue
            (limit, whose) = limited
            wide = _wider(run["splits"], limit, dims)
            if not wide:
                continue
            where_dims = ("their dims are the modality's x_columns and y_columns: select "
                          "fewer" if all("@" in w for w in wide) else "narrow their dims")
            key = (f"estimators.{est}.settings.out_of_range: warn" if est in config["estimators"]
                   else "out_of_range: warn in the estimator's settings")
            problems.append(
                f"{where}: {est} ({whose}) takes at most dim_x = {limit[0]}, dim_y = "
                f"{limit[1]} and refuses more, but these splits hold more: "
                f"{'; '.join(wide)}. Either {where_dims}, use a MIST trained on wider "
                f"splits, or set {key} to answer with a warning")
    for name, entry in models.items():
        if "calibrate" not in entry:
            continue
        limit, whose = _model_dims(models, name, dims)
        wide = _wider(entry["calibrate"], limit, dims)
        if wide:
            problems.append(
                f"models.{name}.calibrate: the calibration splits hold more columns "
                f"than {whose} takes (dim_x = {limit[0]}, dim_y = {limit[1]}): "
                f"{'; '.join(wide)}. Narrow them or widen its training splits")


def _quantile_grid(spec: Mapping[str, Any], models: Mapping[str, Any]
                   ) -> tuple[float, float, list[float], str] | None:
    """``(tau_min, tau_max, calibrated levels, whose)`` of a MIST-QR estimators entry's
    network (the shipped card, or a model entry's settings), None for another estimator."""
    if spec["class"] != "MIST":
        return None
    from mistmodel.model import ModelConfig

    name = spec.get("model", "default")
    if name == "default":
        from mistmodel.checkpoint import read_card
        from mistmodel.mist import default_checkpoint

        variant = (spec.get("settings") or {}).get("variant", "mist")
        if variant != "mist_qr":
            return None
        card = read_card(default_checkpoint(variant))
        grid = card.get("model_config") or {}
        factors = (card.get("interval_calibration") or {}).get("factors") or {}
        return (grid.get("tau_min", ModelConfig.tau_min),
                grid.get("tau_max", ModelConfig.tau_max), sorted(map(float, factors)),
                f"the shipped {variant} checkpoint")
    entry = models[name]
    if entry["variant"] != "mist_qr":
        return None
    from mistmodel.calibration import LEVELS

    from .training import train_config

    grid = train_config(entry, train=["-"], val=["-"], out="-", seed=0).model_config()
    return (grid.tau_min, grid.tau_max, list(LEVELS) if "calibrate" in entry else [],
            f"model {name!r}")


def _check_interval_level(config: Mapping[str, Any], models: Mapping[str, Any],
                          estimators: Mapping[str, Any], runs: Mapping[str, Any],
                          problems: list[str], warnings: list[str]) -> None:
    """A MIST-QR of a run answers an interval at ``interval_level`` with its quantiles at
    (1 - level) / 2 and (1 + level) / 2, which must lie on the tau grid it was trained on;
    a calibrated one answers with raw quantiles at a level it has no factor for (a
    warning)."""
    level = config["interval_level"]
    ends = ((1 - level) / 2, (1 + level) / 2)
    used: dict[str, list[str]] = {}
    derived = set(runs) - set(config["runs"])
    for run_name, run in runs.items():
        for est in run["estimators"]:
            used.setdefault(est, []).append(f"modality_study (run {run_name})"
                                            if run_name in derived else f"runs.{run_name}")
    for est, where in used.items():
        grid = _quantile_grid(estimators[est], models)
        if grid is None:
            continue
        tau_min, tau_max, levels, whose = grid
        if ends[0] < tau_min - 1e-9 or ends[1] > tau_max + 1e-9:
            top = min(1 - 2 * tau_min, 2 * tau_max - 1)
            problems.append(
                f"interval_level: {level:g} needs MIST-QR's quantiles at tau = {ends[0]:g} and "
                f"{ends[1]:g}, but {est} ({whose}; {', '.join(where)}) was trained on tau in "
                f"[{tau_min:g}, {tau_max:g}]: its intervals go up to level {top:g}")
        elif levels and not any(abs(level - k) < 1e-9 for k in levels):
            warnings.append(
                f"interval_level: {est} ({whose}; {', '.join(where)}) has conformal factors "
                f"at levels {', '.join(f'{k:g}' for k in levels)} only: at {level:g} its "
                "intervals are not calibrated (raw quantiles, widened where needed to hold "
                "the calibrated intervals of lower levels)")


def _check_conditional_store(config: Mapping[str, Any], name: str) -> None:
    """mistgen's checks of a conditional store's specs, design and address (no data made)."""
    from mistgen.conditional_design import make_conditional_design, make_conditional_plan

    recipe = conditional_store_recipe(config, name)
    design_args = {k: v for k, v in recipe.items()
                   if k not in ("specs", "seed", "split", "shard_size")}
    design = make_conditional_design(recipe["specs"], **design_args)
    make_conditional_plan(design, recipe["seed"], recipe["split"], recipe["shard_size"])


def _largest_dims(config: Mapping[str, Any], split: str) -> tuple[int, int, int]:
    """The most columns of X, of Y and of Z a datapoint of a conditional split can have."""
    from mistgen.conditional_design import make_conditional_design

    recipe = conditional_store_recipe(config, split)
    design = make_conditional_design(recipe["specs"], **{
        k: v for k, v in recipe.items() if k not in ("specs", "seed", "split", "shard_size")})
    if design.dim_grid is not None:
        return tuple(max(d[g] for d in design.dim_grid) for g in range(3))
    return tuple(hi for _, hi in design.dim_ranges)


def _check_conditional_run(config: Mapping[str, Any], run: Mapping[str, Any]) -> None:
    """MIST's conditional network refuses more columns per group than it was trained on:
    every split of the run must stay within them (the shipped network's card, or a
    conditional_models entry's training dims)."""
    for est in run["estimators"]:
        spec = config["estimators"][est]
        if spec["class"] != "MIST":
            continue
        if spec.get("model", "default") == "default":
            from mistmodel.checkpoint import read_card
            from mistmodel.mist import default_checkpoint

            variant = (spec.get("settings") or {}).get("variant", "mist_cmi")
            ranges = read_card(default_checkpoint(variant)).get("data_ranges") or {}
            limit = max((ranges.get(k, [0, 0])[1] for k in ("dim_x", "dim_y", "dim_z")),
                        default=0)
            whose = f"the shipped {variant}"
        else:
            entry = config["conditional_models"][spec["model"]]
            if "train" in entry:
                limit = max(_largest_dims(config, entry["train"]))
            else:   # drawn by address: the settings' dim_range, else the training default
                from mistmodel.conditional_training import ConditionalTrainConfig

                limit = (entry.get("settings") or {}).get(
                    "dim_range", ConditionalTrainConfig.dim_range)[1]
            whose = f"conditional_models.{spec['model']}"
        for split in run["splits"]:
            widest = max(_largest_dims(config, split))
            if limit and widest > limit:
                raise ValueError(f"split {split!r} reaches {widest} columns in a group, but "
                                 f"{est} ({whose}) was trained on at most {limit} per group "
                                 "and refuses more")


def _check_conditional_settings(entry: Mapping[str, Any]) -> None:
    """The settings make a valid ``ConditionalTrainConfig`` (unknown keys, bad ranges)."""
    from .training import conditional_train_config

    conditional_train_config(entry, init="init", checkpoint="models/conditional/x/c", seed=0)


def _check_modality(config: Mapping[str, Any], name: str, entry: Mapping[str, Any],
                    base_dir: str) -> None:
    """The data file (NaN, constant columns, column range, X/Y overlap), the flow
    settings, and every split warped with it at the modality's dims."""
    from mistgen.design import make_design
    from mistgen.flows import FlowSettings
    from mistgen.modality import modality_from_config

    modality = modality_from_config(name, {k: v for k, v in entry.items()
                                           if k != "figure_split"}, base_dir)
    FlowSettings.from_mapping(entry.get("flow"))
    dims = {"dim_range": (modality.dim_x, modality.dim_x),
            "dim_y_range": (modality.dim_y, modality.dim_y)}
    for split in _warped_splits(config, name):
        entry = config["splits"][split]
        size = {"n_grid": n_grid(entry["n_grid"])} if "n_grid" in entry else {"count": entry["count"], **({"n_range": entry["n_range"]}
                                               if "n_range" in entry else {})}
        try:
            make_design(families_of(config, split), **size, **dims,
                        repeats=entry.get("repeats"))
        except ValueError as exc:
            raise ValueError(f"split {split!r} warped to its dims "
                             f"(dim_x={modality.dim_x}, dim_y={modality.dim_y}): {exc}") from None


def _warped_splits(config: Mapping[str, Any], modality: str) -> list[str]:
    """The base splits the study warps with ``modality``."""
    used = {config["modalities"][modality]["figure_split"]}
    models, _, runs = derived_study(config)
    for entry in models.values():
        used.update(s for key in ("train", "val") for s in entry[key])
    for run in runs.values():
        used.update(run["splits"])
    return sorted({base_split(s) for s in used
                   if s == config["modalities"][modality]["figure_split"]
                   or s.endswith(f"@{modality}")})


def _check_estimator(spec: Mapping[str, Any]) -> None:
    """Construct the estimator once; a MIST with settings is constructed with the shipped
    checkpoint (its settings do not depend on the weights)."""
    from .estimators import make_estimator

    if spec["class"] != "MIST" or spec.get("settings"):
        make_estimator(spec, checkpoint=None)


def _check_model(config: Mapping[str, Any], name: str, entry: Mapping[str, Any],
                 models: Mapping[str, Any]) -> None:
    """The training settings, as the train job will build them (no stores needed)."""
    from .training import train_config

    cfg = train_config(entry, train=["-"], val=["-"], out=f"models/{name}", seed=config["seed"])
    grid = cfg.model_config()
    if "calibrate" in entry and entry["variant"] == "mist_qr":
        from mistmodel.calibration import LEVELS
        top = max(LEVELS)
        if grid.tau_min > (1 - top) / 2 + 1e-9 or grid.tau_max < (1 + top) / 2 - 1e-9:
            raise ValueError(f"calibrate: factors are fitted at levels up to {top:g}, which "
                             f"need tau = {(1 - top) / 2:g} and {(1 + top) / 2:g}, but this "
                             f"MIST-QR is trained on tau in [{grid.tau_min:g}, "
                             f"{grid.tau_max:g}]: widen settings.model's tau range")
    if "init" in entry:
        base = models[entry["init"]]
        mine = train_config(base, train=["-"], val=["-"], out="-", seed=0)
        if mine.model_config() != cfg.model_config():
            raise ValueError(f"init {entry['init']!r} has another model configuration "
                             f"({mine.model_config().to_dict()}) than this entry's "
                             f"({cfg.model_config().to_dict()})")
