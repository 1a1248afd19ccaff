"""`python -m processor.bench`."""

import sys

from processor.bench.main import main

sys.exit(main())
