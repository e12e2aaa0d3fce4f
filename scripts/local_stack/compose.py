"""docker-compose.yaml read the way ``docker compose`` reads it, for the local stack (``stack.py``).

Covers what this project's compose files use: several files merged in order (as ``-f a -f b``),
``.env`` and env-file parsing, interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``$$``, nested defaults), YAML anchors and
``<<:`` merge keys (PyYAML resolves them), profiles, ``depends_on`` conditions and start order,
volumes and healthchecks. Nothing here knows about this project's services.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BRACED = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?", re.S)
DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)")
# Lists that a later compose file extends rather than replaces.
EXTENDED_LISTS = {"volumes", "ports", "env_file", "profiles", "expose"}


class ComposeError(ValueError):
    """The compose files, or the variables they need, are not usable; the message says why."""


# --- interpolation -------------------------------------------------------------------------------
def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """``text`` with compose's ``$`` syntax expanded from ``variables``.

    Raises:
        ComposeError: a ``${VAR:?message}`` (or ``?``) variable is missing, or the syntax is bad.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
        elif text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2 : end], variables))
            i = end + 1
        elif match := NAME.match(text, i + 1):
            out.append(variables.get(match[0], ""))
            i = match.end()
        else:
            out.append("$")
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for j in range(start, len(text)):
        if text.startswith("${", j):
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    raise ComposeError(f"unclosed ${{ in {text!r}")


def _expand(body: str, variables: Mapping[str, str]) -> str:
    match = BRACED.fullmatch(body)
    if not match:
        raise ComposeError(f"invalid interpolation format: ${{{body}}}")
    name, op, arg = match.groups()
    value = variables.get(name)
    if op is None:
        return value or ""
    present = value is not None and (value != "" or not op.startswith(":"))
    if op.endswith("-"):
        return value if present else interpolate(arg, variables)  # type: ignore[return-value]
    if op.endswith("+"):
        return interpolate(arg, variables) if present else ""
    if not present:
        raise ComposeError(f"required variable {name} is missing a value: {interpolate(arg, variables)}")
    return value  # type: ignore[return-value]


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _interpolate_tree(value, variables) for key, value in node.items()}
    if isinstance(node, list):
        return [_interpolate_tree(value, variables) for value in node]
    return interpolate(node, variables) if isinstance(node, str) else node


# --- env files -------------------------------------------------------------------------------------
def read_env_file(path: Path, lookup: Mapping[str, str] | None = None) -> dict[str, str]:
    """KEY=VALUE lines as compose reads them: comments, ``export``, quotes, ``$`` expansion.

    Unquoted and double-quoted values are interpolated from ``lookup`` and the keys above them;
    single-quoted values are literal; `` #`` starts a comment in an unquoted value.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if not sep or not NAME.fullmatch(key):
            raise ComposeError(f"{path}:{number}: not a KEY=VALUE line: {raw!r}")
        value = value.strip()
        if value[:1] == "'" and value.endswith("'") and len(value) > 1:
            values[key] = value[1:-1]
            continue
        if value[:1] == '"' and value.endswith('"') and len(value) > 1:
            value = value[1:-1].replace("\\n", "\n").replace('\\"', '"')
        else:
            value = re.split(r"\s#", value, maxsplit=1)[0].rstrip()
        values[key] = interpolate(value, {**(lookup or {}), **values})
    return values


# --- loading and merging -----------------------------------------------------------------------------
def _normalise(service: dict[str, Any]) -> dict[str, Any]:
    """List forms as mappings, so that files merge key by key."""
    env = service.get("environment")
    if isinstance(env, list):
        service["environment"] = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    deps = service.get("depends_on")
    if isinstance(deps, list):
        service["depends_on"] = {name: {"condition": "service_started"} for name in deps}
    for key in ("env_file", "profiles"):
        if isinstance(service.get(key), str):
            service[key] = [service[key]]
    return service


def _merge(base: Any, override: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = _merge(base[name], value, name) if name in base else value
        return merged
    if isinstance(base, list) and isinstance(override, list) and key in EXTENDED_LISTS:
        return base + [item for item in override if item not in base]
    return override


def load(files: list[Path], variables: Mapping[str, str]) -> dict[str, Any]:
    """The merged, interpolated compose model of ``files`` (later files override earlier ones)."""
    model: dict[str, Any] = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ComposeError(f"cannot read {path}: {exc}") from exc
        data = {key: value for key, value in data.items() if not key.startswith("x-")}
        for service in (data.get("services") or {}).values():
            _normalise(service)
        model = _merge(model, data)
    try:
        return _interpolate_tree(model, variables)
    except ComposeError as exc:
        raise ComposeError(f"{', '.join(map(str, files))}: {exc}") from None


def active_services(model: dict[str, Any], variables: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Services without a profile, plus those of the profiles in COMPOSE_PROFILES."""
    profiles = {p.strip() for p in variables.get("COMPOSE_PROFILES", "").split(",") if p.strip()}
    services = model.get("services") or {}
    return {
        name: service
        for name, service in services.items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def dependencies(services: dict[str, dict[str, Any]], name: str) -> dict[str, str]:
    """``depends_on`` of one active service: dependency -> condition.

    A dependency with ``required: false`` whose service is not active is dropped, as compose does.
    """
    found = {}
    for dep, spec in (services[name].get("depends_on") or {}).items():
        spec = spec or {}
        if dep not in services:
            if spec.get("required", True) is False:
                continue
            raise ComposeError(f"service {name} depends on {dep}, which is not enabled")
        found[dep] = spec.get("condition", "service_started")
    return found


def start_order(services: dict[str, dict[str, Any]]) -> list[str]:
    """Every active service after the services it depends on."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ComposeError(f"dependency cycle through {name}")
        visiting.add(name)
        for dep in dependencies(services, name):
            visit(dep)
        order.append(name)

    for name in services:
        visit(name)
    return order


def depths(services: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Each active service's rank in the start order, in start order: 1 + its deepest dependency's
    (stable when services it does not depend on come or go)."""
    depth: dict[str, int] = {}
    for name in start_order(services):
        depth[name] = 1 + max((depth[dep] for dep in dependencies(services, name)), default=0)
    return depth


# --- one service -------------------------------------------------------------------------------------
def environment(service: dict[str, Any], project_dir: Path, variables: Mapping[str, str]) -> dict[str, str]:
    """The container's variables from compose: its env files, then ``environment``.

    An ``environment`` entry without a value takes the caller's variable, or is left out.
    """
    env: dict[str, str] = {}
    for entry in service.get("env_file") or []:
        path = entry["path"] if isinstance(entry, dict) else entry
        env.update(read_env_file(project_dir / path, variables))
    for key, value in (service.get("environment") or {}).items():
        if value is None:
            if key in variables:
                env[key] = variables[key]
        else:
            env[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def argv(command: str | list[Any] | None) -> list[str]:
    """A compose ``command`` (string or list) as an argument list."""
    if command is None:
        return []
    return shlex.split(command) if isinstance(command, str) else [str(arg) for arg in command]


def volumes(service: dict[str, Any], project_dir: Path, volume_root: Path) -> dict[str, Path]:
    """Mount point in the container -> the host folder: named volumes under ``volume_root``."""
    mounts = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            source, target = entry.get("source", ""), entry["target"]
        else:
            source, target = [*entry.split(":"), ""][:2]
        if source.startswith((".", "/", "~")):
            path = Path(source).expanduser()
            mounts[target] = (path if path.is_absolute() else project_dir / path).resolve()
        else:
            mounts[target] = volume_root / source
    return mounts


def published(service: dict[str, Any]) -> dict[int, int]:
    """Published ports: container port -> host port."""
    found = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            found[int(entry["target"])] = int(entry.get("published", entry["target"]))
            continue
        parts = str(entry).split("/")[0].split(":")
        found[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 else int(parts[-1])
    return found


def healthcheck(service: dict[str, Any]) -> list[str] | None:
    """The healthcheck's command as an argument list (``CMD-SHELL`` through ``sh -c``), or None."""
    check = service.get("healthcheck") or {}
    test = check.get("test")
    if check.get("disable") or not test or test == ["NONE"]:
        return None
    if isinstance(test, str):
        return ["sh", "-c", test]
    if test[0] == "CMD-SHELL":
        return ["sh", "-c", " ".join(test[1:])]
    return [str(arg) for arg in (test[1:] if test[0] == "CMD" else test)]


def seconds(value: str | float | None, default: float) -> float:
    """A compose duration (``1m30s``, ``10s``, ``500ms``) in seconds."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 0.000001}
    parts = DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ComposeError(f"not a duration: {value!r}")
    return sum(float(number) * scale[unit] for number, unit in parts)
