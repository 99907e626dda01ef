"""Stages `workload`, `integrity` and `verdict`: what one case does and what it means.

workloads.py is the one table of workloads (program, arguments, needs); programs.py builds the C
programs; execute.py runs one case in a booted guest; integrity.py compares block checksums;
verdict.py turns a raw outcome into a Verdict; kselftest.py runs the kernel's own GUP selftests.
"""
