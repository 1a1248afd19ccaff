"""`python -m processor.cli`: the same as the `touchpoint` console script."""

import sys

from processor.cli import main

sys.exit(main())
