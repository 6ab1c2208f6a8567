"""Load and validate the plant file: ``load_plant`` (a path) and ``parse_plant`` (its
text) return the ``Plant`` or raise ``PlantConfigError`` with one message naming the file,
the key path and the problem; nothing starts half-configured. The file is read
defensively (``config.plant_yaml``), validated against the model (``domain.plant``), then
checked across keys (``config.plant_checks``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from config.plant_checks import cross_check
from config.plant_yaml import MAX_PLANT_BYTES, PlantConfigError, decode_plant, key_path, read_yaml
from domain.plant import Plant

__all__ = ["DEMO_PLANT", "PlantConfigError", "load_plant", "parse_plant"]  # PlantConfigError: what they raise

DEMO_PLANT = Path(__file__).with_name("demo_plant.yaml")


def load_plant(path: Path | str) -> Plant:
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_PLANT_BYTES + 1)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PlantConfigError(path, [("(file)", f"cannot read: {reason}")]) from exc
    return parse_plant(decode_plant(raw, path), path)


def parse_plant(text: str, path: Path | str = "<plant>") -> Plant:
    data = read_yaml(text, path)
    try:
        plant = Plant.model_validate(data)
    except ValidationError as exc:
        problems = [(key_path(err["loc"], data), err["msg"].removeprefix("Value error, ")) for err in exc.errors()]
        raise PlantConfigError(path, problems) from None
    problems = cross_check(plant)
    if problems:
        raise PlantConfigError(path, problems)
    return plant
