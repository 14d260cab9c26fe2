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

    One model per role at a time: a grid of checkpoints swaps the scored model between cells and
    never holds two, while an MT-Bench judge stays loaded next to the model it judges.
    """

    def __init__(self) -> None:
        self._loaded: dict[str, tuple[str, Backend]] = {}

    def _backend(self, model: dict[str, Any], role: str) -> Backend:
        key = sha256_text(canonical_json(model))
        held = self._loaded.get(role)
        if held is None or held[0] != key:
            if held is not None:
                del self._loaded[role]
                held[1].close()
            self._loaded[role] = (key, create_backend(ModelConfig.model_validate(model)))
        return self._loaded[role][1]

    def call(self, model: dict[str, Any], kind: str, requests: Sequence[Request], role: str = "model") -> list[Completion]:
        backend = self._backend(model, role)
        if kind == "generate":
            return backend.generate(requests)
        return backend.loglikelihood(requests)

    def info(self, model: dict[str, Any], role: str = "model") -> dict[str, Any] | None:
        """The loaded backend's own info (dtype, template hash, engine), None if this replica never
        loaded that model."""
        held = self._loaded.get(role)
        if held is None or held[0] != sha256_text(canonical_json(model)):
            return None
        return held[1].info()

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
        self.answered: dict[str, int] = {}  # requests sent to the pool, per role

    def backend_info(self, model: ModelConfig, role: str) -> dict[str, Any]:
        """The wrapped backend's info from the first replica that loaded it ({} if none did)."""
        payload = model.model_dump()
        for actor in self.actors:
            try:
                info = self.ray.get(actor.info.remote(payload, role))
            except self.ray.exceptions.RayActorError:
                continue
            if info is not None:
                return dict(info)
        return {}

    @property
    def size(self) -> int:
        return len(self.actors)

    def map(self, model: ModelConfig, kind: str, requests: Sequence[Request], role: str = "model") -> list[Completion]:
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
        self.answered[role] = self.answered.get(role, 0) + len(requests)
        pending = {self.actors[i].call.remote(payload, kind, shards[i], role): (i, self.actors[i]) for i in range(n)}
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
                pending[substitute.call.remote(payload, kind, shards[index], role)] = (index, substitute)
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
    they are), so a run can be resumed with or without Ray; so is its recorded info, plus the pool's.
    """

    name = "ray"

    def __init__(self, config: ModelConfig, pool: RayPool, role: str = "model") -> None:
        super().__init__(config)
        self.pool = pool
        self.role = role

    @property
    def parallelism(self) -> int:
        return max(1, self.pool.size)

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.pool.map(self.config, "generate", requests, self.role)

    def loglikelihood(self, requests: Sequence[Request]) -> list[Completion]:
        return self.pool.map(self.config, "loglikelihood", requests, self.role)

    def info(self) -> dict[str, Any]:
        pool = {"address": self.pool.config.address, "actors": self.pool.size, "actors_lost": self.pool.lost}
        return self.pool.backend_info(self.config, self.role) | {"ray": pool}
