"""Where a workflow's environment comes from besides ``env``: env files, a profile, secrets.

Prodigy's precedence, lowest first, which treefork keeps:

1. the process environment;
2. ``env_files``, in order (a later file wins);
3. the workflow's ``env`` (then a domain's, in treefork's format);
4. the active profile's variables;
5. ``secrets``.

- ``env_files`` entries are paths (``.env``) or ``{path, required}``. A relative path is
  relative to the workflow file's folder; ``~`` and ``${NAME}`` (from the process
  environment and the files read before) are expanded. A missing file is skipped unless
  ``required: true``. Lines are ``KEY=value`` (``export KEY=value`` too), ``#`` comments and
  blank lines; one pair of matching quotes around a value is removed. A line without ``=``,
  a bad name or an unbalanced quote is a problem at ``file:line``.
- ``profiles`` maps a name to variables (and an optional ``description``). The active one
  is ``treefork run --profile NAME``, else ``$TREEFORK_PROFILE`` (or Prodigy's
  ``$PRODIGY_PROFILE``), else the workflow's ``active_profile``; none is active otherwise.
  An unknown name is a problem that lists the defined ones.
- ``secrets`` maps a name to where its value is: ``"${env:NAME}"`` (also ``"${NAME}"`` or
  ``"NAME"``) or ``{provider: env, key: NAME}`` for a variable of the environment above (the
  process environment and the env files), ``{provider: file, key: PATH}`` for a file's
  content (one final newline dropped). A secret whose source is missing is a problem: the
  job would fail later anyway, after spending on agents. Its value is masked in everything
  treefork writes (:mod:`treefork.core.masking`).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treefork.errors import Problem
from treefork.workflow.env import env_text, substitute_env
from treefork.workflow.source import DataPath, SourceMap, dotted

__all__ = ("PROFILE_VARIABLES", "EnvSources", "load_env_sources", "parse_env_file")

PROFILE_VARIABLES = ("TREEFORK_PROFILE", "PRODIGY_PROFILE")
"""Environment variables naming the active profile when ``--profile`` is not given."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_REFERENCE = re.compile(
    r"\$\{env:(?P<env>[A-Za-z_][A-Za-z0-9_]*)\}|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}"
    r"|\$?(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
_PROVIDERS = ("env", "file")


@dataclass
class EnvSources:
    """The environment a workflow is loaded with, beyond its ``env`` blocks."""

    process: dict[str, str]
    """The process environment with the env files over it."""
    profile: str | None = None
    """The active profile."""
    profile_env: dict[str, str] = field(default_factory=dict)
    """Its variables, as text (references not yet resolved)."""
    secrets: dict[str, str] = field(default_factory=dict)
    """Each secret's value."""
    env_files: list[Path] = field(default_factory=list)
    """The env files read, in order."""
    file_values: dict[str, str] = field(default_factory=dict)
    """The variables the env files set (later files win): steps get them too."""
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def parse_env_file(text: str, name: str) -> tuple[dict[str, str], list[Problem]]:
    """The variables of an env file, and its problems (each at ``name:line``)."""
    values: dict[str, str] = {}
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        where = f"{name}:{number}"
        if entry.startswith("export ") and "=" in entry:
            entry = entry.removeprefix("export ").lstrip()
        key, equals, value = entry.partition("=")
        key, value = key.strip(), value.strip()
        if not equals:
            problems.append(Problem(where, f"no '=' in {entry!r}: lines are KEY=value"))
        elif not _NAME.fullmatch(key):
            problems.append(Problem(where, f"{key!r} is not a variable name (A-Z, 0-9, _)"))
        elif value[:1] in ("'", '"') or value[-1:] in ("'", '"'):
            if len(value) < 2 or value[0] != value[-1]:
                problems.append(Problem(where, f"unbalanced quotes in the value of {key}"))
            else:
                values[key] = value[1:-1]
        else:
            values[key] = value
    return values, problems


@dataclass
class _Loader:
    data: dict[str, Any]
    source: SourceMap
    base: Path
    found: EnvSources

    def problem(self, path: DataPath, message: str) -> None:
        self.found.problems.append(self.source.problem(path, message))

    def warn(self, path: DataPath, message: str) -> None:
        self.found.warnings.append(f"{self.source.where(path)}: {dotted(path)}: {message}")

    def path_of(self, text: str, scopes: list[Mapping[str, str]]) -> Path:
        expanded = Path(substitute_env(text, scopes)[0]).expanduser()
        return expanded if expanded.is_absolute() else self.base / expanded

    # -- env files -------------------------------------------------------------------------

    def env_files(self, process: Mapping[str, str]) -> None:
        entries = self.data.get("env_files")
        if entries is None:
            return
        if isinstance(entries, str | dict):
            entries = [entries]
        if not isinstance(entries, list):
            self.problem(("env_files",), "must be a list of paths or {path, required}")
            return
        loaded: dict[str, str] = {}
        for index, entry in enumerate(entries):
            path: DataPath = ("env_files", index)
            text, required = entry, False
            if isinstance(entry, dict):
                text, required = entry.get("path"), entry.get("required") is True
                unknown = sorted(set(entry) - {"path", "required"})
                if unknown:
                    self.problem((*path, unknown[0]), "unknown key (an entry has path, required)")
            if not isinstance(text, str) or not text.strip():
                self.problem(path, "must be a path, or {path: ..., required: true}")
                continue
            file = self.path_of(text, [loaded, process])
            loaded.update(self.env_file(path, file, required=required))
        self.found.process.update(loaded)
        self.found.file_values.update(loaded)

    def env_file(self, path: DataPath, file: Path, *, required: bool) -> dict[str, str]:
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            if required:
                self.problem(path, f"env file {file} does not exist (required: true)")
            return {}
        except UnicodeDecodeError:
            self.problem(path, f"env file {file} is not UTF-8 text")
            return {}
        except OSError as error:
            self.problem(path, f"cannot read env file {file}: {error.strerror or error}")
            return {}
        values, problems = parse_env_file(text, str(file))
        self.found.problems.extend(problems)
        self.found.env_files.append(file)
        return values

    # -- profiles --------------------------------------------------------------------------

    def profile(self, chosen: str | None, process: Mapping[str, str]) -> None:
        profiles = self.data.get("profiles")
        if profiles is not None and not isinstance(profiles, dict):
            self.problem(("profiles",), "must map profile names to their variables")
            return
        profiles = profiles or {}
        origin, where = "--profile", ("profiles",) if profiles else ()
        if chosen is None:
            for variable in PROFILE_VARIABLES:
                if process.get(variable):
                    chosen, origin = process[variable], f"${variable}"
                    break
        if chosen is None and self.data.get("active_profile") is not None:
            chosen, origin, where = (
                str(self.data["active_profile"]),
                "active_profile",
                ("active_profile",),
            )
        if chosen is None:
            return
        variables = profiles.get(chosen)
        if not isinstance(variables, dict):
            message = _unknown_profile(chosen, origin, profiles)
            self.found.problems.append(
                self.source.problem(where, message)
                if where
                else Problem(self.source.where(()), message)
            )
            return
        self.found.profile = chosen
        for name, value in variables.items():
            path = ("profiles", chosen, name)
            if name == "description":
                continue
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.problem(path, "is not a variable name (A-Z, 0-9, _)")
            elif isinstance(value, dict | list) or value is None:
                self.problem(path, "a profile's variables are text, numbers or booleans")
            else:
                self.found.profile_env[name] = env_text(value)

    # -- secrets ---------------------------------------------------------------------------

    def secrets(self) -> None:
        secrets = self.data.get("secrets")
        if secrets is None:
            return
        if not isinstance(secrets, dict):
            self.problem(("secrets",), "must map names to where each value is")
            return
        for name, spec in secrets.items():
            path: DataPath = ("secrets", name)
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                self.problem(path, "a secret's name is a variable name (A-Z, 0-9, _)")
                continue
            value = self.secret(path, spec)
            if value is not None:
                self.found.secrets[name] = value

    def secret(self, path: DataPath, spec: Any) -> str | None:
        if isinstance(spec, str):
            match = _SECRET_REFERENCE.fullmatch(spec.strip())
            if match is None:
                self.problem(path, _NO_LITERAL)
                return None
            variable = match.group("env") or match.group("braced") or match.group("bare")
            return self.from_env(path, variable)
        if not isinstance(spec, dict):
            self.problem(path, _NO_LITERAL)
            return None
        key = self.provider_key(path, spec)
        if key is None:
            return None
        if spec["provider"] == "env":
            return self.from_env(path, key)
        return self.from_file(path, self.path_of(key, [self.found.process]))

    def provider_key(self, path: DataPath, spec: dict[str, Any]) -> str | None:
        """The ``key`` of ``{provider, key}`` when both are usable."""
        provider, key = spec.get("provider"), spec.get("key")
        unknown = sorted(set(spec) - {"provider", "key", "version"})
        if unknown:
            self.problem((*path, unknown[0]), "unknown key (a secret has provider, key, version)")
        if provider not in _PROVIDERS:
            self.problem(
                (*path, "provider"),
                f"provider {provider!r} is not supported: use env or file (Prodigy's vault, "
                "aws and custom providers are not implemented there either)",
            )
            return None
        if not isinstance(key, str) or not key.strip():
            needed = "the variable's name" if provider == "env" else "the file's path"
            self.problem((*path, "key"), f"the {provider} provider needs key: {needed}")
            return None
        if spec.get("version") is not None:
            self.warn(
                (*path, "version"),
                "is not used: the env and file providers keep one version of a secret",
            )
        return key.strip()

    def from_env(self, path: DataPath, variable: str) -> str | None:
        value = self.found.process.get(variable)
        if value is None:
            where = " or the env files" if self.found.env_files else ""
            self.problem(path, f"${variable} is not set in the environment{where}")
        return value

    def from_file(self, path: DataPath, file: Path) -> str | None:
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problem(path, f"secret file {file} does not exist")
            return None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or error
            self.problem(path, f"cannot read secret file {file}: {reason}")
            return None
        return text.removesuffix("\n").removesuffix("\r")


_NO_LITERAL = (
    'names where the value is: "${env:NAME}", {provider: env, key: NAME} or {provider: '
    "file, key: PATH} (a secret's value is never written in the workflow)"
)


def _unknown_profile(chosen: str, origin: str, profiles: Mapping[str, Any]) -> str:
    if not profiles:
        return (
            f"profile {chosen!r} (from {origin}) is chosen, but this workflow defines no profiles"
        )
    names = [str(name) for name in profiles]
    close = difflib.get_close_matches(chosen, names, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return (
        f"profile {chosen!r} (from {origin}) is not defined; the workflow defines "
        f"{', '.join(names)}{hint}"
    )


def load_env_sources(
    data: Any,
    source: SourceMap,
    process: Mapping[str, str],
    *,
    base: Path,
    profile: str | None = None,
) -> EnvSources:
    """Read a workflow's env files, choose its profile and resolve its secrets.

    Args:
        data: The document (need not be valid).
        source: Positions in the file.
        process: The process environment.
        base: The folder relative paths are relative to (the workflow file's).
        profile: The profile asked for (``--profile``), if any.
    """
    found = EnvSources(process=dict(process))
    if not isinstance(data, dict):
        return found
    loader = _Loader(data, source, base, found)
    loader.env_files(process)
    loader.profile(profile, process)
    loader.secrets()
    return found


def workflow_folder(path: Path | str) -> Path:
    """The folder a workflow's relative paths start from."""
    return Path(os.path.abspath(path)).parent
