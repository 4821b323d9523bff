"""Tables as named float columns: numpy arrays, pandas DataFrames and xarray Datasets.

    names, values = table_columns(data)         # names: list[str]; values: (n, p) float64
    groups = column_groups(names, {"a": ["x1", "x2"], "b": ["y"]})

* a 2-D numpy array: columns named ``"0"``, ``"1"``, ... (its column indices); a scipy
  sparse matrix is read as its dense array;
* a pandas DataFrame: its column labels (as strings; two columns with the same label are
  refused);
* an xarray Dataset: its data variables, each 1-D along one shared dimension.

Every check raises a ``ValueError`` naming the column: a non-numeric column, NaN or an
infinite value (with its first row).  Only numpy is imported here; pandas and xarray are
recognised without importing them.

:func:`ties_by_name` reports an estimator's tie warnings once, by the table's names: the
estimators name a side and a column of the pair sample they were given ("x column 0"),
which says nothing about a table split into pairs of variables.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from .caller_warnings import (CeilingWarning, DiscreteBiasWarning, RepeatedRowsWarning,
                              SmallSampleWarning, TiedDataWarning, held, warn)
from .estimators.base import (check_exact_float64, constant_columns, refuse_durations,
                              refuse_masked, tied_flags)

__all__ = ["table_columns", "column_groups", "constant_column_names", "ties_by_name",
           "warned_once"]


def table_columns(data: Any) -> tuple[list[str], np.ndarray]:
    """The names and float64 values ``(n, p)`` of a table's columns (a scipy sparse
    matrix, as scikit-learn passes one, is read dense: the values are dense anyway)."""
    refuse_masked(data, "the table")
    kind = type(data).__module__.split(".")[0]
    if kind == "pandas" and hasattr(data, "columns"):
        names = [str(c) for c in data.columns]
        columns = [data.iloc[:, j].to_numpy() for j in range(data.shape[1])]
    elif kind == "xarray" and hasattr(data, "data_vars"):
        names, columns = _dataset_columns(data)
    elif kind == "xarray":
        raise TypeError("an xarray DataArray is not a table: pass a Dataset (one variable "
                        "per column) or DataArray.to_dataset(dim=...)")
    else:
        array = data.toarray() if kind == "scipy" and hasattr(data, "toarray") else \
            np.asarray(data)
        if array.ndim != 2:
            raise ValueError(f"a numpy table must be 2-D (rows x columns); got shape "
                             f"{array.shape}")
        names = [str(j) for j in range(array.shape[1])]
        columns = [array[:, j] for j in range(array.shape[1])]
    if not names:
        raise ValueError("the table has no columns")
    doubled = sorted({name for name in names if names.count(name) > 1})
    if doubled:
        raise ValueError(f"the table names more than one column {doubled[0]!r}; column "
                         "names must be unique")
    values = np.empty((len(columns[0]), len(columns)), dtype=np.float64)
    for j, (name, column) in enumerate(zip(names, columns)):
        values[:, j] = _numeric(column, name)
    return names, values


def _dataset_columns(ds: Any) -> tuple[list[str], list[np.ndarray]]:
    names, columns, dims = [], [], set()
    for name, var in ds.data_vars.items():
        if var.ndim != 1:
            raise ValueError(f"variable {name!r} has dimensions {var.dims}; every variable "
                             "of a Dataset table must be 1-D along the same dimension")
        dims.add(var.dims[0])
        names.append(str(name))
        columns.append(var.values)
    if len(dims) > 1:
        raise ValueError(f"the Dataset's variables lie along different dimensions "
                         f"{sorted(map(str, dims))}; a table needs one row dimension")
    return names, columns


def _numeric(column: np.ndarray, name: str) -> np.ndarray:
    column = np.asarray(column)
    refuse_durations(column.dtype, f"column {name!r}")
    if column.dtype == object or not (np.issubdtype(column.dtype, np.number)
                                      or column.dtype == np.bool_):
        raise ValueError(f"column {name!r} is not numeric (dtype {column.dtype})")
    if np.iscomplexobj(column):
        raise ValueError(f"column {name!r} holds complex values; MI needs real ones")
    if column.ndim == 1:
        check_exact_float64(column.reshape(-1, 1), lambda _: f"column {name!r}")
    values = column.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        value = values[bad[0]]
        kind = "NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")
        raise ValueError(f"column {name!r} contains {kind} (first at row {bad[0]}; "
                         f"{bad.size} such rows)")
    return values


def column_groups(names: Sequence[str], groups: Mapping[str, Sequence[Any]] | None
                  ) -> list[tuple[str, list[int]]]:
    """``(group name, column indices)`` for each group; every column its own group when
    ``groups`` is None.  Group members are column names (or, for unnamed numpy columns,
    indices); an unknown column, an empty group, a column in two groups and two groups of
    one name (as text: ``1`` and ``"1"``) are refused."""
    if groups is None:
        return [(name, [j]) for j, name in enumerate(names)]
    if not isinstance(groups, Mapping) or not groups:
        raise ValueError("groups must be a non-empty dict: group name -> list of columns")
    position = {name: j for j, name in enumerate(names)}
    owner: dict[int, str] = {}
    out = []
    seen: dict[str, Any] = {}
    for group, members in groups.items():
        if str(group) in seen:
            raise ValueError(f"groups {seen[str(group)]!r} and {group!r} have one name, "
                             f"{str(group)!r}: name each group differently")
        seen[str(group)] = group
        if not isinstance(members, (str, bytes)) and callable(getattr(members, "tolist", None)):
            members = members.tolist()      # a numpy array, pandas Index or array of names
        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence):
            raise ValueError(f"group {group!r} must be a list of columns; got {members!r}")
        if len(members) == 0:
            raise ValueError(f"group {group!r} is empty")
        cols = []
        for member in members:
            key = str(member)
            if key not in position:
                shown = ", ".join(list(names)[:20]) + (", ..." if len(names) > 20 else "")
                raise ValueError(f"group {group!r}: no column {member!r}; columns: {shown}")
            j = position[key]
            if j in owner:
                where = "twice" if owner[j] == str(group) else f"and in group {owner[j]!r}"
                raise ValueError(f"column {key!r} is in group {group!r} {where}; each column "
                                 "may belong to one group")
            owner[j] = str(group)
            cols.append(j)
        out.append((str(group), cols))
    return out


def constant_column_names(names: Sequence[str], values: np.ndarray,
                          used: Sequence[int]) -> list[str]:
    """Names of the columns among ``used`` that hold a single value."""
    if not values.shape[0]:
        return []
    constant = set(constant_columns(values[:, list(used)]).tolist())
    return [names[j] for i, j in enumerate(used) if i in constant]


@contextmanager
def ties_by_name(estimator: Any, variables: Sequence[tuple[str, np.ndarray]]) -> Iterator[None]:
    """Hold back the :class:`TiedDataWarning` s that ``estimator`` raises inside the block;
    after it, if there were any, raise one naming the ``(name, values)`` variables with a
    non-constant column the estimator's own test calls tied (its ``tie_flags``, else
    :func:`tied_flags`), with the estimator's advice."""
    # copied rows are not a column's ties: their own warning passes as it is
    with held(TiedDataWarning, passing=(RepeatedRowsWarning,)) as messages:
        yield
    if not messages:
        return
    tied, first = [], None
    for name, values in variables:
        kept = np.delete(values, constant_columns(values), axis=1)
        flags = _tie_flags(estimator, kept) if kept.shape[1] else []
        if np.any(flags):
            first = kept[:, np.asarray(flags, dtype=bool)] if first is None else first
            column = kept[:, int(np.argmax(flags))]
            tied.append(f"{name!r} ({np.unique(column).size} distinct values in "
                        f"{column.size} rows)")
    who = getattr(estimator, "name", type(estimator).__name__)
    what = (", ".join(tied) + (" is" if len(tied) == 1 else " are")) if tied else \
        "some variables are"
    advice_for = getattr(estimator, "tie_advice_for", None)   # advice by kind of column
    if advice_for is not None:
        advice = advice_for(first) if first is not None else messages[0]
    else:
        advice = getattr(estimator, "tie_advice", None) or messages[0]
    warn(f"{who}: {what} discrete or heavily tied: {advice}", TiedDataWarning)


def _tie_flags(estimator: Any, values: np.ndarray) -> np.ndarray:
    """Which columns of ``values`` the estimator's tie warning is about."""
    return np.asarray(getattr(estimator, "tie_flags", tied_flags)(values), dtype=bool)


@contextmanager
def warned_once(who: str, categories: tuple[type[Warning], ...] = (
        DiscreteBiasWarning, SmallSampleWarning, CeilingWarning, RepeatedRowsWarning)
                ) -> Iterator[None]:
    """Hold back the warnings of each of ``categories`` raised inside the block (one per
    pair of variables, each with its own numbers); after it, raise one per category saying
    how many there were and quoting the first."""
    gathered: list[tuple[type[Warning], list[str]]] = []

    def emit() -> None:
        for category, messages in gathered:
            if messages:
                more = (f"{len(messages)} of its estimates warned; the first: "
                        if len(messages) > 1 else "")
                warn(f"{who}: {more}{messages[0]}", category)

    try:
        with ExitStack() as stack:
            gathered = [(category, stack.enter_context(held(category)))
                        for category in categories]
            yield
    except Exception:
        # the warnings were earned before the error; one raised as an error (a filter set
        # to "error") must not replace the error in flight
        try:
            emit()
        except Warning:
            pass
        raise
    emit()
