"""Stage `kernel`: KernelSpec → KernelArtifact.

fetch.py dispatches on the spec's kind; artifact.py is the value every kind produces (and its
cache metadata); apt.py is the private apt state; debian.py fetches prebuilt Debian kernels;
source/ builds kernels from a source tree plus a patch series and config fragments.
"""
