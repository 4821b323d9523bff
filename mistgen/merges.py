"""Distinct values that a cast or a transform gives one value: the stored rows then hold
less MI than their label says.  Used by the store's build (a cast to float32, a spec's
transforms), the warp and the modality checks."""
from __future__ import annotations

import numpy as np

#: A cast or transform that merges distinct values in more than this share of a column's
#: rows is reported.
MERGED_SHARE = 0.01


def merges_values(block: np.ndarray, cast: np.ndarray) -> bool:
    """Whether casting ``block`` to ``cast`` merged distinct values of some column in more
    than ``MERGED_SHARE`` of its rows (rows whose cast value another row shares that had a
    different value before)."""
    return cast.dtype != block.dtype and maps_values_together(block, cast)


def maps_values_together(before: np.ndarray, after: np.ndarray) -> bool:
    """Whether ``after`` (a cast, or a transform, column by column of ``before``) gives
    distinct values of ``before`` one value in more than ``MERGED_SHARE`` of some column's
    rows."""
    if len(before) < 2:
        return False
    limit = MERGED_SHARE * len(before)
    # a column whose new values tie in t adjacent pairs has at most 2 t rows in ties
    ties = (np.diff(np.sort(after, axis=0), axis=0) == 0).sum(axis=0)
    for j in np.flatnonzero(2 * ties > limit):
        # rows ordered by their new value, then their old one: a group of equal new values
        # holds its old values in order, also where the map is not monotone
        order = np.lexsort((before[:, j], after[:, j]))
        old, new = before[order, j], after[order, j]
        group = np.cumsum(np.r_[True, new[1:] != new[:-1]]) - 1
        distinct = np.bincount(group, weights=np.r_[True, old[1:] != old[:-1]])
        rows = np.bincount(group)
        if rows[distinct > 1].sum() > limit:
            return True
    return False
