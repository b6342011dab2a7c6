"""``python -m galprof.cli``."""

import sys

from .main import main

sys.exit(main())
