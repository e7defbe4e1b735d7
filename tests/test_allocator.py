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
           if k not in ("THP_MEM_ALLOC_ENABLE", "COLGRAPH_MALLOC_TUNING", "LD_PRELOAD",
                        "COLGRAPH_ALLOCATOR")}
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


# ------------------------------------------------------------------ the fast allocator
from colgraph.allocator import find_allocator  # noqa: E402

TCMALLOC = find_allocator("tcmalloc")
JEMALLOC = find_allocator("jemalloc")
needs = lambda lib, name: pytest.mark.skipif(lib is None, reason=f"{name} not installed")  # noqa: E731

# the command under test: chooses the allocator, then reports what this process runs with
COMMAND = """
import os, sys
import colgraph.allocator as a
{patch}
print("returned", a.use_fast_allocator())
print("active", a.active_allocator())
print("conf", os.environ.get("MALLOC_CONF"))
print("argv", sys.argv[1:])
"""


def command(patch: str = "", args=(), **env_settings):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LD_PRELOAD", "COLGRAPH_ALLOCATOR", "MALLOC_CONF")}
    proc = subprocess.run([sys.executable, "-c", COMMAND.format(patch=patch), *args],
                          capture_output=True, text=True, env={**env, **env_settings},
                          timeout=60)
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    return proc, lines


@needs(TCMALLOC, "tcmalloc")
def test_commands_rerun_themselves_under_tcmalloc_with_the_same_arguments():
    proc, out = command(args=["a b", "--x=1"])
    assert proc.returncode == 0, proc.stderr
    assert out["returned"] == "tcmalloc" and out["active"] == "tcmalloc"
    assert out["argv"] == "['a b', '--x=1']"  # the re-executed command line is the same
    assert proc.stderr == ""  # nothing to say when it works


@needs(JEMALLOC, "jemalloc")
def test_jemalloc_on_request_keeps_its_pages():
    proc, out = command(COLGRAPH_ALLOCATOR="jemalloc")
    assert proc.returncode == 0, proc.stderr
    assert out["active"] == "jemalloc" and "dirty_decay_ms:-1" in out["conf"]
    # a user's own jemalloc settings win
    proc, out = command(COLGRAPH_ALLOCATOR="jemalloc", MALLOC_CONF="narenas:2")
    assert out["active"] == "jemalloc" and out["conf"] == "narenas:2"


def test_system_leaves_the_allocator_alone_and_tunes_glibc():
    proc, out = command(COLGRAPH_ALLOCATOR="system")
    assert proc.returncode == 0, proc.stderr
    assert out["returned"] == "system" and out["active"] == "system" and proc.stderr == ""


def test_without_an_allocator_one_line_says_how_to_install_one():
    proc, out = command(patch="a.find_allocator = lambda choice='auto': None")
    assert proc.returncode == 0, proc.stderr
    assert out["active"] == "system"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt install libtcmalloc-minimal4" in lines[0]


@pytest.mark.parametrize("choice, match", [("tcmallocc", "expected one of auto"),
                                           ("/no/such/lib.so", "expected one of auto")])
def test_a_bad_choice_is_refused_before_anything_runs(choice, match):
    proc, out = command(COLGRAPH_ALLOCATOR=choice)
    assert proc.returncode == 1 and "returned" not in out
    assert f"COLGRAPH_ALLOCATOR={choice}" in proc.stderr and match in proc.stderr


@needs(TCMALLOC, "tcmalloc")
def test_a_bad_choice_is_refused_under_a_preloaded_allocator_too():
    proc, out = command(COLGRAPH_ALLOCATOR="tcmallocc", LD_PRELOAD=TCMALLOC)
    assert proc.returncode == 1 and "expected one of auto" in proc.stderr


def test_a_missing_named_allocator_is_refused():
    proc, out = command(patch="a.find_allocator = lambda choice='auto': None",
                        COLGRAPH_ALLOCATOR="jemalloc")
    assert proc.returncode == 1 and "no such allocator is installed" in proc.stderr


@needs(TCMALLOC, "tcmalloc")
def test_a_users_own_preloaded_allocator_is_kept():
    proc, out = command(COLGRAPH_ALLOCATOR="auto", LD_PRELOAD=TCMALLOC)
    assert out["active"] == "tcmalloc"
    if JEMALLOC is not None:  # theirs is jemalloc: not replaced by our first choice
        proc, out = command(LD_PRELOAD=JEMALLOC)
        assert out["active"] == "jemalloc"


def test_a_preload_that_fails_to_load_runs_on_with_a_message():
    # the dynamic linker ignores (and reports) a library it cannot preload
    proc, out = command(patch="a.find_allocator = lambda choice='auto': '/nonexistent/libx.so'")
    assert proc.returncode == 0 and out["active"] == "system"
    assert "did not load an allocator" in proc.stderr


@needs(TCMALLOC, "tcmalloc")
def test_python_m_colgraph_allocator_prints_the_library_to_preload():
    def allocator(*args, **env_settings):
        env = {k: v for k, v in os.environ.items() if k != "COLGRAPH_ALLOCATOR"}
        return subprocess.run([sys.executable, "-m", "colgraph", "allocator", *args],
                              capture_output=True, text=True, timeout=60,
                              env={**env, **env_settings})

    proc = allocator()
    assert proc.returncode == 0 and proc.stdout.strip() == TCMALLOC
    proc = allocator("x")
    assert proc.returncode == 1 and "takes no arguments" in proc.stderr
    proc = allocator(COLGRAPH_ALLOCATOR="system")
    assert proc.returncode == 1 and "preloads no allocator" in proc.stderr


def test_a_command_that_cannot_be_re_executed_runs_on_with_a_message():
    proc, out = command(patch="a.find_allocator = lambda choice='auto': '/lib/libtcmalloc.so'\n"
                              "def refuse(*args): raise PermissionError(13, 'Permission denied')\n"
                              "a.os.execve = refuse")
    assert proc.returncode == 0 and out["returned"] == "system"
    assert "could not re-run the command" in proc.stderr and "Permission denied" in proc.stderr


# ------------------------------------------------------------------ OpenMP threads' wait
THREADS = """
import os, sys
import colgraph
print("tuned", colgraph.tune_threads())
print("spin", os.environ.get("GOMP_SPINCOUNT"))
import torch
print("late", colgraph.tune_threads())
"""


def threads(**settings):
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    proc = subprocess.run([sys.executable, "-c", THREADS], capture_output=True, text=True,
                          env={**env, **settings}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines())


def test_idle_threads_sleep_after_a_thousand_spins_unless_the_user_says_otherwise():
    out = threads()
    assert out == {"tuned": "True", "spin": "1000", "late": "True"}
    assert threads(GOMP_SPINCOUNT="5")["spin"] == "5"  # the user's setting wins
    assert threads(GOMP_SPINCOUNT="5")["tuned"] == "False"
    assert threads(OMP_WAIT_POLICY="ACTIVE")["spin"] == "None"


def test_tuning_threads_after_torch_loaded_changes_nothing():
    proc = subprocess.run([sys.executable, "-c", "import os, torch, colgraph\n"
                           "print(colgraph.tune_threads(), os.environ.get('GOMP_SPINCOUNT'))"],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"})
    assert proc.stdout.split() == ["False", "None"]


def test_the_commands_set_both_up():
    """python -m colgraph: threads' wait in the environment libgomp reads, the allocator."""
    script = ("import os, runpy, sys\n"
              "import colgraph.cli as cli\n"
              "cli.COMMANDS['probe'] = lambda argv: print('spin', os.environ.get('GOMP_SPINCOUNT'))\n"
              "sys.argv = ['colgraph', 'probe']\n"
              "runpy.run_module('colgraph', run_name='__main__')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOMP_SPINCOUNT", "COLGRAPH_ALLOCATOR", "LD_PRELOAD")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "spin 1000" in proc.stdout
