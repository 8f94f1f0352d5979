"""Which store (and ledger, and config) a command works on.

One rule for every command, said once in each command's help:
`--store DIR` wins; then `PREFMIX_STORE`; then the `store:` of `--config FILE`
(or of `$PREFMIX_CONFIG`); then the demo's config (configs/demo.yaml, whose
store is demo-store/ at the repository root), so that the commands printed
after `make demo` work from the repository root without flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from prefmix.config import Config, load
from prefmix.store import Store

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
STORE_HELP = ("store folder; wins over PREFMIX_STORE, which wins over the store of --config "
              "(default: $PREFMIX_CONFIG, else the demo's config)")
CONFIG_HELP = "YAML config (its store and ledger); default: $PREFMIX_CONFIG, else configs/demo.yaml"


@dataclass(frozen=True)
class Context:
    store: Store
    config: Config
    config_path: Path | None

    @property
    def ledger_url(self) -> str | None:
        return self.config.lineage.ledger_url


def config_path(explicit: str | None) -> Path | None:
    """--config, else $PREFMIX_CONFIG, else the demo's config (if this is a checkout that has one)."""
    chosen = explicit or os.environ.get("PREFMIX_CONFIG")
    if chosen:
        return Path(chosen)
    return DEMO_CONFIG if DEMO_CONFIG.is_file() else None


def resolve(store: str | None = None, config: str | None = None, overrides: list[str] | None = None) -> Context:
    """The store and config a command uses; nothing is created (writers call store.ensure() under the lock)."""
    path = config_path(config)
    loaded = load(path, overrides or []) if path is not None else Config()
    root = store or loaded.store_root()
    return Context(Store.at(root), loaded, path)

