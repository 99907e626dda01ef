"""Kernels built from source: sources, patch series, config fragments, the build cache.

`build(spec)` is what `kernel.fetch()` calls for `kind: source` specs.
"""
from .builder import build, plan  # noqa: F401
