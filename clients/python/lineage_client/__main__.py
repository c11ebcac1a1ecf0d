"""`python -m lineage_client …` is the `lineage` command."""

import sys

from .cli import main

sys.exit(main())
