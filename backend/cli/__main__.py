"""``python -m backend.cli``: the ``inhabit`` command without its console script."""
import sys

from . import main

sys.exit(main())
