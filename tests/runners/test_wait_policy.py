"""``import carousel`` leaves OpenMP's wait policy alone: ``OMP_WAIT_POLICY`` is what the user set, or
unset, when torch loads its OpenMP runtime (which reads the variable once, at load), whichever of
the two is imported first.

Measured (``python -m benchmarks --groups scan,fused --busy --repeats 5``, 2-core AMD EPYC): on a
quiet machine ``PASSIVE`` makes torch's own fused kernels 1.2-8.4 x slower and the scans 4-8 %
slower, far above the 3 % a library default may cost, so carousel does not set it; on a busy
machine it saves 1.3-2.9 x, and a user who shares the cores sets it themselves (README, "Speed").
Each case runs in a fresh interpreter: the policy is decided at the first import.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# prints OMP_WAIT_POLICY as torch starts to load (a meta-path finder sees the import before any of
# torch's code runs), then as the C library's getenv sees it (what OpenMP reads), after the import
SPY = """
import ctypes, os, sys
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            print("at torch import:", os.environ.get("OMP_WAIT_POLICY"))
        return None
sys.meta_path.insert(0, Spy())
{imports}
value = ctypes.CDLL(None).getenv
value.restype = ctypes.c_char_p
print("after:", value(b"OMP_WAIT_POLICY"))
"""


def _run(imports: str, policy: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_NUM_THREADS"] = "1"
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    proc = subprocess.run([sys.executable, "-c", SPY.format(imports=imports)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.splitlines()


def test_importing_carousel_first_leaves_the_policy_unset():
    assert _run("import carousel", None) == ["at torch import: None", "after: None"]


@pytest.mark.parametrize("policy", ["ACTIVE", "PASSIVE", "passive"])
def test_a_value_the_user_set_is_what_torch_loads_with(policy):
    assert _run("import carousel", policy) == [f"at torch import: {policy}", f"after: {policy.encode()!r}"]


def test_torch_imported_first_leaves_the_environment_untouched():
    assert _run("import torch\nimport carousel", None) == ["at torch import: None", "after: None"]
