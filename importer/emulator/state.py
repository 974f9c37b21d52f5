"""What one emulator holds: its config, records, counters, faults, throttles and random sources.

Every part of the server (collection, batch, identity, admin) works on one `_State`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Final

from .config import EmulatorConfig, _apply_changes
from .faults import _Faults, _Throttle
from .store import _Store

_STAT_KEYS: Final = (
    "requests",
    "gets",
    "posts",
    "patches",
    "deletes",
    "batches",
    "batch_items",
    "created",
    "updated",
    "deleted",
    "throttled",
    "faults",
    "unauthorized",
    "forbidden",
    "not_found",
    "bad_requests",
    "drops",
    "token_requests",
)


class _State:
    """The mutable state of one emulator; ``store.records`` and ``stats`` are live views."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = _Store()
        self.stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)
        self.faults = _Faults()
        self.throttle = _Throttle()
        self.batch_rng = random.Random()
        self.id_rng = random.Random()
        self.request_rng = random.Random()
        self.seed_rngs()

    def seed_rngs(self) -> None:
        seed = self.config.seed
        self.faults.rng.seed(seed)
        self.batch_rng.seed(None if seed is None else f"batch:{seed}")
        # Ids need not be secret, only unique: uuid4() reads the OS random source every time,
        # a fifth of the emulator's CPU per request.
        self.id_rng = random.Random(None if seed is None else f"ids:{seed}")
        self.request_rng = random.Random()

    def reset(self) -> None:
        """Forget records, stats, scripted faults and throttle windows; re-seed the RNGs."""
        self.store.clear()
        for key in self.stats:
            self.stats[key] = 0
        self.faults.script.clear()
        self.throttle.reset()
        self.seed_rngs()

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Change config fields at runtime, all or nothing; raises `ValueError` when invalid."""
        _apply_changes(self.config, changes)
        if "seed" in changes:
            self.seed_rngs()

    def tally(self, status: int) -> None:
        """Count an answer by its kind."""
        stats = self.stats
        if status == 429:
            stats["throttled"] += 1
        elif status == 401:
            stats["unauthorized"] += 1
        elif status == 403:
            stats["forbidden"] += 1
        elif status == 404:
            stats["not_found"] += 1
        elif status in (400, 415):
            stats["bad_requests"] += 1
