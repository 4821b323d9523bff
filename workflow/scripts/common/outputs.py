"""A rule's output files appear whole or not at all (as ``mistmodel.checkpoint`` writes)."""
from mistgen.files import atomic_output

__all__ = ["atomic_output"]
