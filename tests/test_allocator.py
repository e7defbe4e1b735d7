"""colgraph's CPU allocator settings: applied by colgraph.tune_allocator() and by colgraph's own
entry points, never by `import colgraph` (a library must not change its host process)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(),
                                reason="Linux only")

# prints: THP_MEM_ALLOC_ENABLE, whether glibc served a 16 MB block from mmap (its default
# threshold) rather than the heap, and how much of a 256 MB tensor sits in huge pages
REPORT = """
import ctypes, os, torch
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                "usmblks", "fsmblks", "uordblks", "fordblks",
                                                "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 * 2**20)
mmapped = libc.mallinfo2().hblkhd - before >= 16 * 2**20
libc.free(ctypes.c_void_p(block))
x = torch.ones(2**26); x.add_(1)  # 256 MB
huge = sum(int(l.split()[1]) for l in open("/proc/self/smaps_rollup")
           if l.startswith("AnonHugePages"))
print(os.environ.get("THP_MEM_ALLOC_ENABLE"), mmapped, huge)
"""


def probe(before: str, **settings):
    env = {k: v for k, v in os.environ.items()  # whatever this process set: a fresh start
           if k not in ("THP_MEM_ALLOC_ENABLE", "COLGRAPH_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, "-c", before + REPORT], capture_output=True,
                         text=True, env={**env, **settings}, check=True).stdout.split()
    return out[-3], out[-2] == "True", int(out[-1])


def huge_pages_possible() -> bool:
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    return mode.exists() and "[never]" not in mode.read_text()


def test_import_leaves_the_process_alone():
    thp, mmapped, huge_kb = probe("import colgraph, colgraph.training, colgraph.cli\n")
    assert thp == "None"  # no environment variable set
    assert mmapped  # glibc's default mmap threshold: mallopt untouched
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if mode.exists() and "[madvise]" in mode.read_text():
        assert huge_kb < 100_000  # torch did not ask for huge pages


def test_tune_allocator_turns_on_huge_pages_and_malloc_tuning():
    thp, mmapped, huge_kb = probe("import colgraph\n"
                                  "assert colgraph.tune_allocator() == "
                                  "{'huge_pages': True, 'malloc': True}\n"
                                  "import colgraph.training\n")
    assert thp == "1" and not mmapped  # 16 MB now comes from the heap
    if huge_pages_possible():
        assert huge_kb > 100_000  # the 256 MB tensor sits in huge pages


@pytest.mark.parametrize("command", ["train", "analyze"])
def test_entry_points_apply_it_before_the_first_tensor(command):
    """The commands tune before their heavy imports (PyG makes a tensor at import)."""
    args = ["--help"] if command == "train" else [".", "--max-batches", "0"]  # stops early
    thp, mmapped, huge_kb = probe(f"import colgraph.cli\ntry:\n"
                                  f"    colgraph.cli.{command}({args!r})\n"
                                  f"except SystemExit:\n    pass\n"
                                  f"import colgraph.training\n")
    assert thp == "1" and not mmapped
    if huge_pages_possible():
        assert huge_kb > 100_000


def test_user_settings_win():
    thp, mmapped, huge_kb = probe("import colgraph\n"
                                  "assert colgraph.tune_allocator() == "
                                  "{'huge_pages': False, 'malloc': False}\n",
                                  THP_MEM_ALLOC_ENABLE="0", COLGRAPH_MALLOC_TUNING="0")
    assert thp == "0" and mmapped and huge_kb == 0
