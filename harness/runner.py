"""The only orchestrator: samples -> requests -> cached backend calls -> scores -> store.

Resuming is built in, not bolted on: a run is identified by the hash of everything that determines
its results, so running the same command again continues an unfinished run, skips every sample
already stored and answers every request already cached (by content, not by position or rank).
Each batch of samples is committed on its own; answers are cached as soon as they arrive.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.backends import answer_neutral_options, create_backend, resolved_dtype
from harness.backends.base import Backend, backend_fingerprint
from harness.config import ModelConfig, RunConfig, SuiteConfig, config_hash
from harness.errors import ConfigError
from harness.lease import Lease
from harness.provenance import directory_hash, git_revision, library_versions, model_identity, redact_secrets
from harness.reasoning import TOKENS, TRUNCATED, ReasoningLayer, check_loglikelihood, sample_reasoning_scores
from harness.store import Store
from harness.types import Completion, MetricSpec, MetricValue, Request, Sample, SampleScore

if TYPE_CHECKING:
    from harness.distributed import RayPool
from suites import create_suite
from suites.base import Suite, mean_metrics

BackendFactory = Callable[[ModelConfig], Backend]
# Samples stored per transaction while every answer comes from the response cache.
CACHED_BATCH_MAX = 1024


@dataclass(frozen=True)
class SuiteResult:
    """What one suite run produced; `computed` counts samples scored now, `reused` those resumed."""

    run_id: str
    suite: str
    status: str
    metrics: list[MetricValue]
    n_samples: int
    computed: int
    reused: int

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "metrics": {m.name: m.value for m in self.metrics},
            "n_samples": self.n_samples,
            "status": self.status,
        }


class Runner:
    """Runs every suite of a RunConfig against its backends and stores the results."""

    def __init__(
        self,
        config: RunConfig,
        store: Store,
        backend_factory: BackendFactory = create_backend,
        show_progress: bool = True,
        commit_every: int | None = None,
        ray_pool: RayPool | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.backend_factory = backend_factory
        self.ray_pool = ray_pool
        self._owns_pool = False
        self.show_progress = show_progress
        self.commit_every = commit_every or max(16, config.model.batch_size * 4)
        self._backends: dict[str, Backend] = {}
        self._fingerprints: dict[str, str] = {}
        self._identities: dict[str, dict[str, Any]] = {}
        self._layers: dict[str, ReasoningLayer] = {}
        self.backend_calls = 0
        self._lease: Lease | None = None

    # ---- backends ---------------------------------------------------------------------------

    def _model_config(self, role: str) -> ModelConfig:
        if role == "model":
            return self.config.model
        if role == "judge":
            if self.config.judge is None:
                raise ConfigError("this suite needs a judge: pass --judge-model (and --judge-backend)")
            return self.config.judge
        raise ConfigError(f"unknown request role '{role}'")

    def identity(self, role: str) -> dict[str, Any]:
        if role not in self._identities:
            cfg = self._model_config(role)
            if cfg.backend == "file":
                src = cfg.completions or ""
                ident: dict[str, Any] = {"completions": src}
                if src and Path(src).is_file():
                    ident["completions_hash"] = directory_hash(src)
            else:
                if cfg.path and cfg.backend == "hf":
                    from harness.backends.paths import check_adapter_path, check_model_path

                    check_model_path(cfg.path)
                    check_adapter_path(cfg.adapter)
                ident = model_identity(cfg.path, cfg.adapter)
            self._identities[role] = ident
        return self._identities[role]

    def fingerprint(self, role: str) -> str:
        if role not in self._fingerprints:
            cfg = self._model_config(role)
            neutral = answer_neutral_options(cfg)
            self._fingerprints[role] = backend_fingerprint(cfg, self.identity(role), resolved_dtype(cfg), neutral)
        return self._fingerprints[role]

    def backend(self, role: str) -> Backend:
        if role not in self._backends:
            cfg = self._model_config(role)
            # A judge that is the model itself shares the loaded backend instead of loading it twice.
            same = [b for r, b in self._backends.items() if self._model_config(r) == cfg]
            if same:
                self._backends[role] = same[0]
            elif self.config.ray is not None and cfg.backend != "file":
                self._backends[role] = self._ray_backend(cfg, role)
            else:
                self._backends[role] = self.backend_factory(cfg)
        return self._backends[role]

    def layer(self, role: str) -> ReasoningLayer:
        """The reasoning split for one role's answers (markers from its config or its tokenizer)."""
        if role not in self._layers:
            self._layers[role] = ReasoningLayer(self._model_config(role), self.backend(role))
        return self._layers[role]

    def _ray_backend(self, cfg: ModelConfig, role: str) -> Backend:
        from harness.distributed import RayBackend, RayPool

        if self.ray_pool is None:
            assert self.config.ray is not None
            self.ray_pool = RayPool(self.config.ray)
            self._owns_pool = True
        return RayBackend(cfg, self.ray_pool, role)

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self._backends.clear()
        if self._owns_pool and self.ray_pool is not None:
            self.ray_pool.shutdown()
            self.ray_pool = None

    # ---- answering requests -----------------------------------------------------------------

    def answer(self, requests: Sequence[Request]) -> list[Completion]:
        """Answer requests from the cache where possible, else from the backend of their role."""
        results: list[Completion | None] = [None] * len(requests)
        keys = [r.key(self.fingerprint(r.role)) for r in requests]
        cacheable_roles = {r.role for r in requests if self._cacheable(r.role)}
        cached = self.store.cache_lookup([k for k, r in zip(keys, requests, strict=True) if r.role in cacheable_roles])
        missing: dict[tuple[str, str], list[int]] = {}
        for i, (key, req) in enumerate(zip(keys, requests, strict=True)):
            if key in cached:
                results[i] = Completion.from_json(cached[key])
            else:
                missing.setdefault((req.role, req.kind), []).append(i)
        for (role, kind), idxs in missing.items():
            backend = self.backend(role)
            # Identical requests in one batch are asked once (unless the backend replays by sample).
            unique: dict[str, int] = {}
            for i in idxs:
                unique.setdefault(keys[i] if backend.cacheable else f"{i}", i)
            by_key = self._ask(backend, role, kind, {k: requests[i] for k, i in unique.items()})
            for i in idxs:
                results[i] = by_key[keys[i] if backend.cacheable else f"{i}"]
        return [r for r in results if r is not None]

    def _ask(self, backend: Backend, role: str, kind: str, todo: dict[str, Request]) -> dict[str, Completion]:
        """Call the backend one batch at a time, caching each batch's answers as soon as it returns,
        so a crash during a long generation loses only the batch in flight."""
        # A pooled backend (Ray) answers one batch per replica at a time.
        size = self._model_config(role).batch_size * getattr(backend, "parallelism", 1)
        items = list(todo.items())
        call = backend.generate if kind == "generate" else backend.loglikelihood
        answered: dict[str, Completion] = {}
        layer = self.layer(role) if kind == "generate" else None
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            asked = [r for _, r in chunk]
            answers = call(layer.prepare(asked)) if layer else call(asked)
            self.backend_calls += 1
            if len(answers) != len(chunk):
                raise RuntimeError(f"backend '{backend.name}' returned {len(answers)} answers for {len(chunk)} requests")
            if layer:  # split before caching, so a cached answer is the answer, not the thinking
                answers = layer.finish(asked, answers)
            batch = {k: a for (k, _), a in zip(chunk, answers, strict=True)}
            answered.update(batch)
            if backend.cacheable:
                fingerprint = self.fingerprint(role)
                self.store.write_cache(
                    [
                        {"key": k, "fingerprint": fingerprint, "kind": kind, "request": todo[k].content(), "response": a.to_json()}
                        for k, a in batch.items()
                    ]
                )
        return answered

    def _cacheable(self, role: str) -> bool:
        return self._model_config(role).backend != "file"

    # ---- running a suite --------------------------------------------------------------------

    def run(self) -> list[SuiteResult]:
        try:
            return [self.run_suite(s) for s in self.config.suites]
        finally:
            self.close()

    def _run_record(self, suite: Suite, suite_cfg: SuiteConfig, source: str, n: int) -> tuple[str, dict[str, Any]]:
        model = self.config.model
        ident = self.identity("model")
        data_hash = directory_hash(source) if Path(source).exists() else None
        suite_identity = suite.identity()
        judge_fp = self.fingerprint("judge") if self.config.judge else None
        determining: dict[str, Any] = {
            "suite": suite.name,
            "suite_version": suite.version,
            "options": suite_cfg.options,
            "limit": suite_cfg.limit,
            "data_hash": data_hash or source,
            "fingerprint": self.fingerprint("model"),
            "judge": judge_fp,
            "generation": self.config.generation.model_dump(),
        }
        if suite_identity:  # only when present, so suites without side files keep their hashes
            determining["suite_identity"] = suite_identity
        if self.config.train_run_id is not None:
            # A checkpoint scored for a training run is its own run (keyed by run and step); its
            # answers still come from the cache when the same weights were scored before.
            determining["train"] = [self.config.train_run_id, self.config.step]
        digest = config_hash(determining)
        record = {
            "name": self.config.run_name or f"{Path(model.path or model.completions or 'model').name}:{suite.name}",
            "suite": suite.name,
            "suite_version": suite.version,
            "model": model.path,
            "model_hash": ident.get("model_hash"),
            "adapter": model.adapter,
            "adapter_hash": ident.get("adapter_hash"),
            "backend": model.backend,
            "backend_info": {"settings": model.model_dump(exclude={"options"}) | {"options": redact_secrets(model.options)}},
            "generation": self.config.generation.model_dump(),
            "config": {
                "suite": suite_cfg.model_dump(),
                "model": model.model_dump(exclude={"options"}),
                "judge": self.config.judge.model_dump(exclude={"options"}) if self.config.judge else None,
                "judge_fingerprint": judge_fp,
                "suite_identity": suite_identity,
            },
            "config_hash": digest,
            "fingerprint": self.fingerprint("model"),
            "data_source": source,
            "data_hash": data_hash,
            "n_samples": n,
            "git_revision": git_revision(),
            "versions": library_versions() | {"python": sys.version.split()[0]},
            "trust_remote_code": model.trust_remote_code,
            "train_run_id": self.config.train_run_id,
            "step": self.config.step,
        }
        return digest, record

    def run_suite(self, suite_cfg: SuiteConfig) -> SuiteResult:
        suite = create_suite(suite_cfg.name, suite_cfg.options, self.config.generation)
        suite.store = self.store
        try:
            return self._run_suite(suite, suite_cfg)
        finally:
            suite.close()

    def _run_suite(self, suite: Suite, suite_cfg: SuiteConfig) -> SuiteResult:
        source = suite_cfg.data or suite.default_data()
        samples = suite.load(source)
        if suite_cfg.limit is not None:
            samples = samples[: suite_cfg.limit]
        for role in sorted(suite.roles()):
            self._model_config(role)  # a missing judge fails here, before any run row exists
        if samples:
            kinds = {r.kind for r in suite.requests(samples[0], 0, []) if r.role == "model"}
            check_loglikelihood(suite.name, kinds, self.config.model)
        digest, record = self._run_record(suite, suite_cfg, source, len(samples))
        # One live worker per run: a second process on this configuration stops here (lease.py).
        with Lease(self.store, digest) as lease:
            return self._run_leased(suite, samples, digest, record, lease)

    def _run_leased(
        self, suite: Suite, samples: Sequence[Sample], digest: str, record: dict[str, Any], lease: Lease
    ) -> SuiteResult:
        existing = self.store.find_resumable_run(digest)
        done = self.store.stored_sample_ids(existing["id"]) if existing else set()
        pending = [(pos, s) for pos, s in enumerate(samples) if s.id not in done]
        self._preflight(suite, [s for _, s in pending])

        if existing:
            run_id = existing["id"]
            self.store.mark_running(run_id)
        else:
            run_id = self.store.create_run(record, self.config.tags)
        lease.attach(run_id)
        self._lease = lease
        try:
            self._score_pending(run_id, suite, pending, len(samples))
            metrics = self._aggregate(run_id, suite)
            info = dict(record["backend_info"])
            if "model" in self._backends:
                info["loaded"] = self._backends["model"].info()
            self.store.finish_run(run_id, metrics, backend_info=info)
        except BaseException as exc:
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
            self.store.fail_run(run_id, reason)
            raise
        return SuiteResult(run_id, suite.name, "complete", metrics, len(samples), len(pending), len(done))

    def _preflight(self, suite: Suite, pending: Sequence[Sample]) -> None:
        """Load the backend before a run row exists when it will be needed, so a wrong model path
        or a mismatched adapter is reported as a configuration error and leaves no partial run.

        Capabilities are checked the same way: the first uncached request of each kind is asked
        now (a server without prompt log-probabilities or without a chat template fails here) and
        its answer cached, so it is not asked twice; a remote judge's server must answer too."""
        if not pending:
            return
        first = [
            dataclasses.replace(r, sample_id=s.id, index=i)
            for s in pending[: self.commit_every]
            for i, r in enumerate(suite.requests(s, 0, []))
        ]
        roles = {r.role for r in first}
        for role in sorted(set(suite.roles()) - roles):
            if self._model_config(role).backend == "openai":  # later stages (a judge): is it reachable?
                self.backend(role).preflight([])
        for role in roles:
            if not self._cacheable(role):
                every = [
                    dataclasses.replace(r, sample_id=s.id, index=i)
                    for s in pending
                    for i, r in enumerate(suite.requests(s, 0, []))
                    if r.role == role
                ]
                self.backend(role).preflight(every)
                if any(r.kind == "generate" for r in every):
                    self.layer(role)  # a reasoning setting the backend cannot honour fails here
                continue
            mine = [r for r in first if r.role == role]
            cached = self.store.cache_lookup([r.key(self.fingerprint(role)) for r in mine])
            missing = {r.kind: r for r in mine if r.key(self.fingerprint(role)) not in cached}
            if missing:
                if "generate" in missing:
                    self.layer(role)  # loads the backend; a reasoning setting it cannot honour fails here
                self.backend(role).preflight(list(missing.values()))
                self.answer(list(missing.values()))

    def _score_pending(self, run_id: str, suite: Suite, pending: Sequence[tuple[int, Sample]], total: int) -> None:
        with self._progress() as progress:
            task = progress.add_task(suite.name, total=total, completed=total - len(pending))
            start, size = 0, self.commit_every
            while start < len(pending):
                batch = pending[start : start + size]
                calls = self.backend_calls
                rows = self._score_batch(suite, batch)
                if self._lease is not None:
                    self._lease.check()
                self.store.write_batch(run_id, rows, [])
                progress.advance(task, len(batch))
                start += len(batch)
                # A batch answered wholly from the cache cost no model time, so a crash loses little:
                # the next one is larger (fewer transactions and cache queries on a cached rerun).
                size = min(size * 4, CACHED_BATCH_MAX) if self.backend_calls == calls else self.commit_every

    def _score_batch(self, suite: Suite, batch: Sequence[tuple[int, Sample]]) -> list[dict[str, Any]]:
        answers: dict[str, list[list[Completion]]] = {s.id: [] for _, s in batch}
        asked: dict[str, list[list[Request]]] = {s.id: [] for _, s in batch}
        counts: dict[str, int] = {s.id: 0 for _, s in batch}
        failed: set[str] = set()
        active = [s for _, s in batch]
        stage = 0
        while active:
            flat: list[Request] = []
            owners: list[tuple[str, int]] = []
            still: list[Sample] = []
            for sample in active:
                reqs = suite.requests(sample, stage, answers[sample.id])
                if not reqs:
                    continue
                still.append(sample)
                reqs = [
                    dataclasses.replace(r, sample_id=sample.id, index=counts[sample.id] + i) for i, r in enumerate(reqs)
                ]
                counts[sample.id] += len(reqs)
                asked[sample.id].append(reqs)
                answers[sample.id].append([])
                flat.extend(reqs)
                owners.extend((sample.id, i) for i in range(len(reqs)))
            if flat:
                for (sid, _), completion, req in zip(owners, self.answer(flat), flat, strict=True):
                    answers[sid][-1].append(completion)
                    if completion.reasoning_truncated and req.role == "model":
                        failed.add(sid)  # cut inside its thinking: no later stage, no parsing
            active = [s for s in still if s.id not in failed]
            stage += 1
        scored = [s for _, s in batch if s.id not in failed]
        by_id = dict(zip([s.id for s in scored], suite.score_batch(scored, [answers[s.id] for s in scored]), strict=True))
        rows = []
        for position, sample in batch:
            score = by_id[sample.id] if sample.id not in failed else suite.failure_score(sample)
            roles = [[r.role for r in stage_reqs] for stage_reqs in asked[sample.id]]
            extra = sample_reasoning_scores(answers[sample.id], roles)
            if extra:
                score = dataclasses.replace(score, scores={**score.scores, **extra})
            rows.append(_sample_row(suite, position, sample, asked[sample.id], answers[sample.id], score))
        return rows

    def _aggregate(self, run_id: str, suite: Suite) -> list[MetricValue]:
        rows = self.store.run_scores(run_id)
        mine = (TRUNCATED, TOKENS)
        scores = [
            SampleScore(r["sample_id"], {k: v for k, v in r["scores"].items() if k not in mine}, tuple(r["groups"]), r["details"])
            for r in rows
        ]
        # The reasoning figures are the runner's, whatever the suite's own aggregation does.
        reasoning = [SampleScore(r["sample_id"], {k: v for k, v in r["scores"].items() if k in mine}) for r in rows]
        extra = mean_metrics(reasoning, lambda name: MetricSpec(name, higher_is_better=False))
        return suite.aggregate(scores) + extra

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            disable=not self.show_progress,
            transient=False,
        )


def _sample_row(
    suite: Suite,
    position: int,
    sample: Sample,
    requests: list[list[Request]],
    answers: list[list[Completion]],
    score: SampleScore,
) -> dict[str, Any]:
    return {
        "sample_id": sample.id,
        "position": position,
        "input": suite.sample_input(sample),
        "requests": [[r.content() | {"role": r.role} for r in stage] for stage in requests],
        "completions": [[c.to_json() for c in stage] for stage in answers],
        "scores": dict(score.scores),
        "groups": list(score.groups),
        "details": dict(score.details),
    }
