"""``python -m colgraph {train,analyze} ...``: the colgraph-train / colgraph-analyze commands."""
from .cli import main

if __name__ == "__main__":
    main()
