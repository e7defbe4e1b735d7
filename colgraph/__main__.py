"""``python -m colgraph {train,analyze,allocator} ...``: the colgraph-train / colgraph-analyze
commands, under the fast allocator (:func:`colgraph.use_fast_allocator`)."""
import sys

from .cli import main, use_fast_allocator

if __name__ == "__main__":
    if sys.argv[1:2] != ["allocator"]:  # printing the library's path needs no preload
        use_fast_allocator()
    main()
