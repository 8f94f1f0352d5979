"""Versioned prompt templates: which text was sent to the teachers and judge, by id and hash."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from prefmix.errors import ConfigError
from prefmix.hashing import sha256_json
from prefmix.yamlio import read_yaml

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
KINDS = ("answer", "judge_pointwise", "judge_pairwise", "critique", "revise")
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class TemplateSet:
    """All templates of one version; `sha256` covers every text, so any edit changes it."""

    id: str
    version: int
    sha256: str
    texts: dict[str, dict[str, str]]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def messages(self, kind: str, **values: str) -> Messages:
        """Chat messages for one template kind, placeholders filled."""
        spec = self.texts[kind]
        out: Messages = []
        if spec.get("system"):
            out.append({"role": "system", "content": Template(spec["system"]).substitute(values)})
        out.append({"role": "user", "content": Template(spec["user"]).substitute(values)})
        return out


def _resolve(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") or candidate.is_absolute() or "/" in name:
        return candidate
    return BUILTIN_DIR / f"{name}.yaml"


def _check(path: Path, data: Any) -> TemplateSet:
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise ConfigError(f"{path}: expected a mapping with 'id', 'version' and 'templates'")
    if not isinstance(data.get("id"), str) or not data["id"]:
        raise ConfigError(f"{path}: 'id' is missing; expected a template set id")
    texts: dict[str, dict[str, str]] = {}
    for kind in KINDS:
        spec = data["templates"].get(kind)
        if not isinstance(spec, dict) or not isinstance(spec.get("user"), str):
            raise ConfigError(f"{path}: templates.{kind}.user is missing; expected a template text")
        texts[kind] = {"system": str(spec.get("system") or ""), "user": spec["user"]}
    digest = sha256_json({"id": data["id"], "version": data.get("version", 1), "templates": texts})
    return TemplateSet(data["id"], int(data.get("version", 1)), digest, texts)


def load_templates(name: str = "default") -> TemplateSet:
    """A built-in template set by name, or a YAML file by path."""
    path = _resolve(name)
    return _check(path, read_yaml(path, f"template set {name!r} (generation.template)"))
