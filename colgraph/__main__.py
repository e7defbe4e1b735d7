"""``python -m colgraph {train,analyze,allocator} ...``: the colgraph-train / colgraph-analyze
commands, in a process set up for training (:func:`colgraph.setup_process`)."""
import sys

from .cli import main, setup_process

if __name__ == "__main__":
    if sys.argv[1:2] != ["allocator"]:  # printing the library's path needs no preload
        setup_process()
    main()
