"""What this CPU computes fast: its vector instructions and whether it has bfloat16 arithmetic.

Numbers measured on one CPU do not carry to another: with AVX-512 and bfloat16 arithmetic
(avx512_bf16, AMX) bf16 autocast runs the recurrent kernels about 1.7x faster than float32; on an
AVX2-only CPU oneDNN has no bf16 recurrent kernel and float32 itself is 2-3x slower. Benchmarks
and the demo print these features beside their numbers.
"""

from __future__ import annotations

import functools

import torch


@functools.lru_cache(maxsize=1)
def _flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def fast_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic (AVX-512 BF16 or AMX), where bf16 autocast pays off."""
    return bool({"avx512_bf16", "amx_bf16"} & _flags())


def cpu_features() -> dict[str, object]:
    """The features numbers depend on: torch's vector capability, AVX-512, bf16 arithmetic, AMX."""
    flags = _flags()
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": "amx_bf16" in flags,
    }


def describe_cpu() -> str:
    """``vector ISA AVX512, bf16 arithmetic yes (avx512_bf16), AMX no``: one phrase for a report's header."""
    f = cpu_features()
    bf16 = "yes (" + ", ".join(n for n in ("avx512_bf16", "amx") if f[n]) + ")" if fast_bf16() else "no"
    return f"vector ISA {f['capability']}, bf16 arithmetic {bf16}"
