"""`python -m ml train | evaluate | predict | registry | bench` (see `python -m ml -h`)."""

from __future__ import annotations

import sys

from ml.cli import main

sys.exit(main())
