"""Everything that runs suites: runner.py (`rig run`), repro.py, bisect.py, nightly.py, bench.py."""
