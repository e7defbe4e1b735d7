"""Analyse the connectome a run learned: ``python scripts/analyze.py RUN_DIR_OR_CHECKPOINT``.

The same command as ``colgraph-analyze`` (:func:`colgraph.cli.analyze`; ``--help`` lists
what it writes).
"""
from colgraph.cli import analyze, setup_process

if __name__ == "__main__":
    setup_process()  # threads' wait, tcmalloc where installed (re-executes once)
    analyze()
