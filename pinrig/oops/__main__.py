"""``python -m pinrig.oops [--json] LOG...``: the same as ``rig oops``."""
import sys

from pinrig.oops import main

sys.exit(main(sys.argv[1:]))
