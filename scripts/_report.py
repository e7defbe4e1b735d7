"""Shared by the benchmark / experiment scripts: compose the project's config as
``scripts/train.py`` would, and write one section of BENCHMARKS.md, leaving the others alone."""
from __future__ import annotations

from pathlib import Path

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


def compose(overrides: list[str]):
    """The main config with hydra overrides, without starting a hydra app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from colgraph.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def write_section(path: Path, name: str, text: str) -> None:
    """Replace (or append) the block between ``<!-- name -->`` and ``<!-- /name -->``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{text.rstrip()}\n{end}\n"
    old = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        new = old.rstrip() + "\n\n" + block
    path.write_text(new)
