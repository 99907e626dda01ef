"""Stage `kernel`: KernelSpec → KernelArtifact, whatever the kind of spec."""
from __future__ import annotations

from pinrig.config import KernelSpec
from pinrig.errors import UserError
from pinrig.kernels import debian, local
from pinrig.kernels.artifact import KernelArtifact
from pinrig.kernels.source.builder import build


def fetch(spec: KernelSpec, refresh: bool = False) -> KernelArtifact:
    """Return the cached artifact for spec, downloading and unpacking it once."""
    if spec.kind == "source":
        return build(spec, refresh=refresh)
    if spec.kind == "image":
        return local.fetch(spec)
    if spec.kind != "debian":
        raise UserError(f"{spec.path}: kind: {spec.kind} kernels are not supported yet")
    return debian.fetch(spec, refresh)
