"""The study layer: what the Snakemake rules of this workflow call.

It reads the schema-validated study config (``config.yaml``, ``workflow/configs/``) and
turns it into calls of the libraries below it: store recipes for ``mistgen``, training
configs for ``mistmodel.training``, estimators from ``mistmodel``; it runs benchmark jobs
into xarray tables, summarises them and draws the figures.  ``mistgen`` and ``mistmodel``
never read the study config.

Modules: ``checks`` (the whole config checked when the Snakefile is parsed), ``stores``,
``training``, ``calibration``, ``estimators``, ``benchmark``, ``summary``, ``figures``,
``logs``.  The rule scripts beside this package import it as ``common``; from Python, put
``workflow/scripts`` on ``sys.path`` first.
"""
