"""``python -m mistgen ...``: see ``mistgen.cli``."""
import sys

from .cli import main

sys.exit(main())
