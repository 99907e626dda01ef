"""The results directory and what reads it: rundir.py (manifest, per-case files, JUnit, summary),
compare.py (two runs → per-case classification), html.py (self-contained reports), kcidb.py
(KCIDB export)."""
