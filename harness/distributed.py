"""Distributed evaluation on Ray: a pool of actors, each holding one backend replica.

The driver keeps everything that makes runs safe: it loads samples, consults the response cache,
stores results batch by batch and resumes exactly as on one machine. Only the missing requests
travel to the actors. An actor that dies takes only its share of one batch with it: that share is
sent to a surviving actor, so the run completes with nothing lost or answered twice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from harness.backends import create_backend
from harness.backends.base import Backend
from harness.config import ModelConfig, RayConfig
from harness.errors import BackendError, ConfigError
from harness.types import Completion, Request, canonical_json, sha256_text


class BackendReplica:
    """Runs inside a Ray actor: builds the backend for a model config on first use and keeps it.

    One model at a time: a grid of checkpoints swaps models between cells, never holds two.
    """

    def __init__(self) -> None:
        self._key: str | None = None
        self._backend: Backend | None = None

    def call(self, model: dict[str, Any], kind: str, requests: Sequence[Request]) -> list[Completion]:
        key = sha256_text(canonical_json(model))
        if key != self._key or self._backend is None:
            if self._backend is not None:
                self._backend.close()
            self._backend = None
            self._backend = create_backend(ModelConfig.model_validate(model))
            self._key = key
        if kind == "generate":
            return self._backend.generate(requests)
        return self._backend.loglikelihood(requests)

    def pid(self) -> int:
        return os.getpid()


class RayPool:
    """The actors of one evaluation job; shared by every (model, suite) cell of a grid."""

    def __init__(self, config: RayConfig) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("--ray needs Ray: pip install 'harness-eval[ray]'") from None
        self.ray = ray
        self.config = config
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if config.address is None:
                needed = config.num_actors * config.num_cpus_per_actor
                kwargs["num_cpus"] = max(int(needed + 0.999), os.cpu_count() or 1)
            try:
                ray.init(address=config.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                ray.shutdown()  # a failed client connect leaves half-made state that breaks the next init
                raise ConfigError(f"cannot reach the Ray cluster at '{config.address}': {exc}") from None
        remote = ray.remote(BackendReplica).options(
            num_cpus=config.num_cpus_per_actor, num_gpus=config.num_gpus_per_actor, max_restarts=0
        )
        self.actors: list[Any] = [remote.remote() for _ in range(config.num_actors)]
        self.lost = 0

    @property
    def size(self) -> int:
        return len(self.actors)

    def map(self, model: ModelConfig, kind: str, requests: Sequence[Request]) -> list[Completion]:
        """Answer `requests` with every live actor taking a contiguous share; re-send lost shares."""
        if not requests:
            return []
        payload = model.model_dump()
        n = min(len(self.actors), len(requests))
        if n == 0:
            raise BackendError("every Ray actor has died; nothing is left to answer requests")
        bounds = [round(i * len(requests) / n) for i in range(n + 1)]
        shards = [list(requests[bounds[i] : bounds[i + 1]]) for i in range(n)]
        results: list[list[Completion] | None] = [None] * n
        pending = {self.actors[i].call.remote(payload, kind, shards[i]): (i, self.actors[i]) for i in range(n)}
        turn = 0
        while pending:
            [ready], _ = self.ray.wait(list(pending), num_returns=1)
            index, actor = pending.pop(ready)
            try:
                results[index] = self.ray.get(ready)
            except self.ray.exceptions.RayActorError:
                self._drop(actor)
                if not self.actors:
                    raise BackendError("every Ray actor has died; the stored batches are kept, rerun to resume") from None
                substitute = self.actors[turn % len(self.actors)]
                turn += 1
                pending[substitute.call.remote(payload, kind, shards[index])] = (index, substitute)
        return [c for shard in results if shard is not None for c in shard]

    def _drop(self, actor: Any) -> None:
        if actor in self.actors:
            self.actors.remove(actor)
            self.lost += 1

    def shutdown(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self._owns_ray:
            self.ray.shutdown()


class RayBackend(Backend):
    """A backend whose requests are answered by a RayPool; answers equal the wrapped backend's.

    Its cache identity is the wrapped backend's (Ray changes where answers are computed, not what
    they are), so a run can be resumed with or without Ray.
    """

    name = "ray"

    def __init__(self, config: ModelConfig, pool: RayPool) -> None:
        super().__init__(config)
        self.pool = pool

    @property
    def parallelism(self) -> int:
        return max(1, self.pool.size)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.pool.map(self.config, "generate", requests)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self.pool.map(self.config, "loglikelihood", requests)

    def info(self) -> dict[str, Any]:
        return {"ray": {"address": self.pool.config.address, "actors": self.pool.size, "actors_lost": self.pool.lost}}
