"""The study config against its schema, one line per problem.

Snakemake's ``validate`` reports the first problem followed by the whole schema; the
Snakefile calls :func:`check_schema` first, which lists every problem as ``key.path:
message`` (for a value that matches none of several forms, the closest form's complaint;
for a key that a ``not`` rule excludes, the rule's description), and then ``validate``
only to fill in the schema's defaults.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from .checks import ConfigError

#: Problems listed before the rest are counted.
MAX_LISTED = 20


def schema_problems(config: Mapping[str, Any], schema_path: str | Path) -> list[str]:
    """``key.path: message`` for every place ``config`` breaks the schema."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(dict(config)), key=lambda e: list(map(str, e.path))):
        best = jsonschema.exceptions.best_match([error])    # oneOf / anyOf: the closest form
        if best is error and error.context:                 # none closer: the shallowest
            best = jsonschema.exceptions.best_match(error.context)
        error = best
        where = ".".join(map(str, error.absolute_path)) or "the config"
        said = error.schema.get("description") if isinstance(error.schema, dict) else None
        message = f"not allowed here: {said}" if error.validator == "not" and said \
            else error.message
        problems.append(f"{where}: {message}")
    return problems


def check_schema(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise :class:`~common.checks.ConfigError` listing the schema problems of ``config``."""
    problems = schema_problems(config, schema_path)
    if problems:
        more = len(problems) - MAX_LISTED
        listed = problems[:MAX_LISTED] + ([f"... and {more} more"] if more > 0 else [])
        raise ConfigError("the study config does not match workflow/schemas/"
                          f"{Path(schema_path).name}:\n  " + "\n  ".join(listed))
