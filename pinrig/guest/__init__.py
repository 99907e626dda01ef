"""Stages `guest`, `vm` and `transport`: a guest image, a QEMU machine, and SSH into it.

image.py builds the guest root filesystem and per-kernel boot files; qemu.py builds QEMU command
lines (pure functions) and probes the accelerator; vm.py runs QEMU and watches its console;
transport.py runs commands and moves files over SSH; session.py puts them together into a
booted guest ready for cases.
"""
