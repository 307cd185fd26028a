"""Reading docker-compose.yml the way docker-compose does (merge keys, ${VAR:-default}), for the test
that runs every service's command without a container engine."""

from __future__ import annotations

import re
from graphlib import TopologicalSorter
from pathlib import Path

import yaml

VARIABLE = re.compile(r"\$\{(\w+)(?:(:?-)([^}]*))?\}")


def interpolate(value, environment: dict[str, str]):
    """${VAR}, ${VAR-default} (default when unset) and ${VAR:-default} (when unset or empty)."""
    if isinstance(value, str):

        def replace(match: re.Match) -> str:
            name, operator, default = match.group(1), match.group(2), match.group(3) or ""
            if operator == ":-":
                return environment.get(name) or default
            if operator == "-":
                return environment.get(name, default)
            return environment.get(name, "")

        return VARIABLE.sub(replace, value).replace("$$", "$")
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    return value


def load(path: Path, environment: dict[str, str] | None = None) -> dict:
    return interpolate(yaml.safe_load(path.read_text()), environment or {})


def start_order(services: dict) -> list[str]:
    """The services in an order that respects depends_on (what `docker-compose up` does)."""
    graph = {name: set((spec.get("depends_on") or {}).keys()) for name, spec in services.items()}
    return list(TopologicalSorter(graph).static_order())


def command(spec: dict) -> list[str]:
    value = spec["command"]
    return value if isinstance(value, list) else ["sh", "-c", value]
