"""The one YAML reader: a file in, plain data out, and one error type per cause.

- the file is missing or is a folder: ConfigError (the path the user gave is wrong);
- the bytes are not UTF-8 or not YAML: InputError (the file's content is wrong), with the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from prefmix.errors import ConfigError, InputError


def read_yaml(path: str | Path, what: str = "YAML file") -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: expected a {what}, found a directory") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 at byte {exc.start}") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{source}:{where} not valid YAML ({getattr(exc, 'problem', None) or 'parse error'})") from None
