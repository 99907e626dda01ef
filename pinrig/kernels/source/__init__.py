"""Kernels built from source: sources, patch series, config fragments, the build cache.

`builder.build(spec)` is what `pinrig.kernels.fetch.fetch()` calls for `kind: source` specs.
"""
