"""The kernel family this process runs on: the instruction set ONNX Runtime's kernels dispatch to.

Why: the same model bytes compute slightly differently per instruction set (vector width, FMA, and for int8
whether VNNI sums products exactly or AVX2 saturates pair sums in 16 bits). The manifest records the build's
expected self-check answers per family and the runtime compares against its own family's, so a healthy model on
another CPU is told from a broken one. The features come from CPUID as NumPy read it at import, which is right
under an emulator (``qemu-x86_64 -cpu Haswell``) too, unlike /proc/cpuinfo, which shows the host's.
"""

from __future__ import annotations

import platform
from functools import cache

# From the richest to the plainest; the first whose features are all present names the family.
FAMILIES = (
    ("avx512_vnni", ("AVX512F", "AVX512BW", "AVX512VNNI")),
    ("avx512", ("AVX512F", "AVX512BW")),
    ("avx2", ("AVX2", "FMA3")),
    ("sse4", ("SSE41",)),
)


def _features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1.x kept it here
        from numpy.core._multiarray_umath import __cpu_features__  # type: ignore[no-redef]
    return dict(__cpu_features__)


@cache
def kernel_family() -> str:
    """``avx512_vnni``, ``avx512``, ``avx2``, ``sse4`` on x86-64; the machine name elsewhere (``aarch64``)."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        return machine or "unknown"
    features = _features()
    for name, needed in FAMILIES:
        if all(features.get(f) for f in needed):
            return name
    return "x86_64"
