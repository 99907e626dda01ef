#!/usr/bin/env python3
"""Thin entry point: `python rig.py …` behaves like the `rig` console script."""
import sys

from pinrig.cli import main

if __name__ == "__main__":
    sys.exit(main())
