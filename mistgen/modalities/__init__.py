"""Example modality data files shipped with mistgen (see ``make_examples.py`` for provenance)."""
