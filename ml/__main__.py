"""`python -m ml train | evaluate | predict | registry | bench` (see `python -m ml -h`)."""

from ml.cli import main

main()
