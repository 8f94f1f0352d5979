"""What a run will do, computed from config and prompts alone (no network): fingerprint, chunks, lineage."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel

from prefmix.config import Config, Teacher
from prefmix.contract import ContentRef, GenerationLineage, ModelRef, TeacherRef
from prefmix.errors import ConfigError
from prefmix.hashing import sha256_json

from prefmix.generators.constitution import Constitution, load_constitution
from prefmix.generators.prompts import load_prompts
from prefmix.generators.templates import TemplateSet, load_templates

# Operational knobs that may change between a run and its resume without changing its output.
OPERATIONAL = {"enabled", "limit", "retry", "error_budget"}


class ChunkSpec(BaseModel):
    """One chunk of a run's prompts; `key` hashes the chunk's prompts and the run's fingerprint."""

    run_id: str
    index: int
    start: int
    stop: int
    key: str

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class Plan:
    config: Config
    run_id: str
    prompts: pl.DataFrame
    templates: TemplateSet
    constitution: Constitution | None
    teachers: list[Teacher]  # candidate writers
    judge: Teacher  # the primary judge
    judges: list[Teacher]  # every judge, the primary first
    limit: int | None
    fingerprint: str
    fingerprint_inputs: dict[str, Any]
    chunks: list[ChunkSpec]
    generation_fingerprint: str = ""  # what a pair depends on besides its prompt (see generation_fingerprint)

    def used_teachers(self) -> list[Teacher]:
        seen = {t.name: t for t in [*self.teachers, *self.judges]}
        return list(seen.values())

    def sampling(self) -> dict[str, Any]:
        gen = self.config.generation
        judge_t = gen.sampling.temperature if gen.judge_temperature is None else gen.judge_temperature
        return {**gen.sampling.model_dump(), "n": gen.samples_per_prompt, "judge_temperature": judge_t,
                "judge_max_tokens": gen.judge_max_tokens}

    def lineage(self, endpoints: dict[str, list[str]], vllm_version: str | None) -> GenerationLineage:
        return GenerationLineage(
            strategy=self.config.generation.strategy,
            teachers=[TeacherRef(name=t.name, model=t.model, revision=t.revision, endpoints=endpoints.get(t.name, t.endpoints))
                      for t in self.teachers],
            judge=ModelRef(name=self.judge.name, model=self.judge.model, revision=self.judge.revision),
            judges=[ModelRef(name=t.name, model=t.model, revision=t.revision) for t in self.judges],
            vllm_version=vllm_version,
            sampling=self.sampling(),
            template=ContentRef(id=self.templates.ref, sha256=self.templates.sha256),
            constitution=ContentRef(id=self.constitution.ref, sha256=self.constitution.sha256) if self.constitution else None,
            fingerprint=self.fingerprint,
        )

    def chunk_rows(self, chunk: ChunkSpec) -> list[dict[str, Any]]:
        return self.prompts.slice(chunk.start, chunk.size).to_dicts()


def _teacher_ref(t: Teacher) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": t.name, "model": t.model, "revision": t.revision}
    if t.launch is not None:  # what a launched server computes with changes its outputs
        from prefmix.generators.launch import serving

        ref["serving"] = serving(t.launch).identity()
    return ref


def generation_fingerprint(config: Config, templates: TemplateSet, constitution: Constitution | None) -> str:
    """What a synthetic pair depends on besides its prompt: strategy, sampling, candidate teachers and judge with
    their revisions, template and constitution (by content), the seed. A prompt is generated once per fingerprint;
    a pair made under another fingerprint is made again (lineage: pool of a dataset)."""
    gen = config.generation
    return sha256_json({
        "generation": gen.model_dump(mode="json", exclude=OPERATIONAL | {"chunk_size", "max_prompt_chars"}),
        "seed": config.seed,
        "teachers": [_teacher_ref(t) for t in config.generation_teachers()],
        "judge": _teacher_ref(config.judge_teacher()),
        "judges": [_teacher_ref(t) for t in config.judge_teachers()],
        "template": {"id": templates.ref, "sha256": templates.sha256},
        "constitution": {"id": constitution.ref, "sha256": constitution.sha256} if constitution else None,
    })


def load_generation_assets(config: Config) -> tuple[TemplateSet, Constitution | None]:
    gen = config.generation
    templates = load_templates(gen.template)
    constitution = load_constitution(gen.constitution) if gen.strategy == "constitutional" else None
    return templates, constitution


def build_plan(config: Config, run_id: str, limit: int | None = None, prompts: pl.DataFrame | None = None) -> Plan:
    """Load prompts (or take `prompts`: the rows a nightly still needs), templates and constitution; fingerprint
    the run and cut it into chunks."""
    gen = config.generation
    if not config.teachers:
        raise ConfigError("teachers: no teachers configured; generation needs at least one")
    limit = gen.limit if limit is None else limit
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit {limit}: expected a number >= 0")
    given = prompts is not None
    prompts = prompts if prompts is not None else load_prompts(config)
    if limit is not None:
        prompts = prompts.head(limit)
    templates = load_templates(gen.template)
    constitution = load_constitution(gen.constitution) if gen.strategy == "constitutional" else None
    teachers, judge, judges = config.generation_teachers(), config.judge_teacher(), config.judge_teachers()
    inputs = {
        "generation": gen.model_dump(mode="json", exclude=OPERATIONAL),
        "limit": limit,
        "seed": config.seed,
        "teachers": [_teacher_ref(t) for t in teachers],
        "judge": _teacher_ref(judge),
        "judges": [_teacher_ref(t) for t in judges],
        "prompts": [
            {"uri": uri, "sha256": sha}
            for uri, sha in prompts.select("origin_uri", "origin_sha256").unique(maintain_order=True).iter_rows()
        ],
        "template": {"id": templates.ref, "sha256": templates.sha256},
        "constitution": {"id": constitution.ref, "sha256": constitution.sha256} if constitution else None,
    }
    if given:  # a subset of prompt files: the run is those rows
        inputs["prompt_rows"] = sha256_json(prompts.select("origin_sha256", "origin_row").rows())
    fingerprint = sha256_json(inputs)
    size = gen.chunk_size
    chunks = []
    for index, start in enumerate(range(0, prompts.height, size)):
        part = prompts.slice(start, size).select("origin_sha256", "origin_row", "prompt")
        key = sha256_json([fingerprint, json.dumps(part.rows())])
        chunks.append(ChunkSpec(run_id=run_id, index=index, start=start, stop=start + part.height, key=key))
    return Plan(config, run_id, prompts, templates, constitution, teachers, judge, judges, limit, fingerprint, inputs, chunks,
                generation_fingerprint(config, templates, constitution))
