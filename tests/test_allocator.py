"""colgraph applies its CPU allocator settings itself, at import (users need not know them)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = ("import os, torch, colgraph; "
         "print(os.environ['THP_MEM_ALLOC_ENABLE'], colgraph.MALLOC_TUNED); "
         "x = torch.ones(2**26); x.add_(1); "  # 256 MB after the import
         "print(sum(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') "
         "if l.startswith('AnonHugePages')))")


def probe(**settings):
    env = {k: v for k, v in os.environ.items()  # this process imported colgraph: drop its
           if k not in ("THP_MEM_ALLOC_ENABLE", "COLGRAPH_MALLOC_TUNING")}  # setting
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env={**env, **settings}, check=True).stdout.split()
    return out[0], out[1] == "True", int(out[2])


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux only")
def test_import_turns_on_huge_pages_and_malloc_tuning():
    thp, tuned, huge_kb = probe()
    assert thp == "1" and tuned
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if mode.exists() and "[never]" not in mode.read_text():
        assert huge_kb > 100_000  # the 256 MB tensor sits in huge pages


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="Linux only")
def test_user_settings_win():
    thp, tuned, huge_kb = probe(THP_MEM_ALLOC_ENABLE="0", COLGRAPH_MALLOC_TUNING="0")
    assert thp == "0" and not tuned and huge_kb == 0
