"""`lm-eval:TASK`: any task (or group) in lm-eval's registry, answered by harness backends.

lm-eval builds the prompts (its task YAMLs, few-shot sampler and seed), and after the runner has
answered every request through the harness's cache and backend, lm-eval's own filters,
`process_results` and aggregation (including group aggregation and bootstrap standard errors)
turn the answers into numbers. Every document becomes one harness sample (`TASK/DOC_ID`) with
lm-eval's per-sample record in its details, so runs are resumed, gated and compared like any
other suite.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.config import GenerationConfig
from harness.errors import ConfigError
from harness.types import Completion, MetricSpec, MetricValue, Request, Sample, SampleScore
from suites.base import Suite

#: lm-eval's default few-shot seed (simple_evaluate's fewshot_random_seed).
FEWSHOT_SEED = 1234
#: lm-eval's default bootstrap iterations for non-mean metrics' standard errors.
BOOTSTRAP_ITERS = 100_000


def _json_safe(value: Any) -> Any:
    """Round-trip through JSON so the store can keep it (tuples become lists, odd objects strings)."""
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def metric_key(metric: str, filter_key: str) -> str:
    """lm-eval's `metric,filter` name, shortened to `metric` for the default filter `none`."""
    return metric if filter_key == "none" else f"{metric},{filter_key}"


class LmEvalSuite(Suite):
    name = "lm-eval"
    version = "1.0"
    primary_metric = "acc"
    metrics: ClassVar[tuple[MetricSpec, ...]] = ()
    task_name: ClassVar[str] = ""

    @classmethod
    def for_name(cls, task: str, options: Mapping[str, Any] | None, generation: GenerationConfig | None) -> LmEvalSuite:
        """A suite class per task, so the stored suite name is `lm-eval:TASK`."""
        if not task:
            raise ConfigError("name an lm-eval task after the prefix, e.g. lm-eval:hellaswag")
        sub = type(f"LmEvalSuite[{task}]", (cls,), {"name": f"lm-eval:{task}", "task_name": task})
        return sub(options, generation)

    def __init__(self, options: Mapping[str, Any] | None = None, generation: GenerationConfig | None = None) -> None:
        super().__init__(options, generation)
        self.num_fewshot: int | None = self.number_option("num_fewshot", None, minimum=0)
        self.per_task_limit: int | None = self.number_option("per_task_limit", None, minimum=1)
        self.include_path: str | None = self.options.get("include_path")
        self._tasks: dict[str, Any] = {}
        self._groups: dict[str, Any] = {}
        self._instances: dict[str, list[Any]] = {}
        self._higher: dict[str, bool] = {}

    def allowed_options(self) -> Sequence[str]:
        return ("num_fewshot", "include_path", "per_task_limit")

    def default_data(self) -> str:
        # A user folder's content is hashed into the run's identity; registry tasks are named.
        return self.include_path or f"lm-eval:{self.task_name}"

    # ---- loading ----------------------------------------------------------------------------

    def _task_manager(self) -> Any:
        from lm_eval.tasks import TaskManager

        if self.include_path and not Path(self.include_path).is_dir():
            raise ConfigError(f"--include-path '{self.include_path}' is not a folder")
        return TaskManager(include_path=self.include_path)

    def load(self, source: str) -> list[Sample]:
        if Path(source).is_dir() and self.include_path is None:
            self.include_path = source
        manager = self._task_manager()
        if self.task_name not in manager.all_tasks:
            close = difflib.get_close_matches(self.task_name, manager.all_tasks, n=5, cutoff=0.6)
            hint = f" Close matches: {', '.join(close)}." if close else ""
            raise ConfigError(f"unknown lm-eval task '{self.task_name}'.{hint} (`lm-eval ls tasks` lists them all)")
        loaded = manager.load([self.task_name])
        self._tasks, self._groups = dict(loaded["tasks"]), dict(loaded.get("groups") or {})
        samples: list[Sample] = []
        for name, task in self._tasks.items():
            self._configure(task)
            task.build_all_requests(limit=self.per_task_limit, rank=0, world_size=1, cache_requests=False)
            by_doc: dict[int, list[Any]] = defaultdict(list)
            for instance in task.instances:
                by_doc[instance.doc_id].append(instance)
            for doc_id in sorted(by_doc):
                instances = sorted(by_doc[doc_id], key=lambda i: i.idx)
                sample_id = f"{name}/{doc_id}"
                self._instances[sample_id] = instances
                samples.append(Sample(sample_id, {"task": name, "doc_id": doc_id, "doc": _json_safe(instances[0].doc)}, name))
            for metric, higher in (task.higher_is_better() or {}).items():
                self._higher.setdefault(metric, bool(higher))
        if not samples:
            raise ConfigError(f"lm-eval task '{self.task_name}' produced no documents")
        first = next(iter(self._tasks.values()))
        metric_names = list(first.aggregation() or {})
        if metric_names:
            self.primary_metric = metric_names[0]  # type: ignore[misc]
        return samples

    def _configure(self, task: Any) -> None:
        """simple_evaluate's overrides: --num-fewshot (unless the task pins 0), the few-shot seed."""
        if self.num_fewshot is not None:
            if task.get_config("num_fewshot") != 0:
                task.set_config(key="num_fewshot", value=self.num_fewshot)
        elif task.get_config("num_fewshot") is None:
            task.set_config(key="num_fewshot", value=0)
        task.set_fewshot_seed(seed=FEWSHOT_SEED)

    def sample_input(self, sample: Sample) -> dict[str, Any]:
        return dict(sample.data)

    # ---- requests and scoring ---------------------------------------------------------------

    def _instances_of(self, sample: Sample) -> list[Any]:
        try:
            return self._instances[sample.id]
        except KeyError:
            raise RuntimeError("LmEvalSuite.load must run before requests") from None

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        if stage > 0:
            return []
        from harness.lmeval import to_request

        return [to_request(i) for i in self._instances_of(sample) for _ in range(i.repeats)]

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        from harness.lmeval import to_response

        instances = self._instances_of(sample)
        answers = iter(completions[0])
        for instance in instances:
            instance.resps = [to_response(instance, next(answers)) for _ in range(instance.repeats)]
            instance.filtered_resps = {}
        task = self._tasks[sample.data["task"]]
        for ensemble in getattr(task, "_filters", []):
            ensemble.apply(instances)
        doc = instances[0].doc
        per_metric: dict[str, Any] = {}
        numeric: dict[str, float] = {}
        filtered: dict[str, Any] = {}
        for filter_key in instances[0].filtered_resps:
            filtered[filter_key] = [i.filtered_resps[filter_key] for i in instances]
            results = task.process_results(doc, filtered[filter_key])
            for metric, value in results.items():
                per_metric[f"{metric},{filter_key}"] = value
                if isinstance(value, bool | int | float):
                    numeric[metric_key(metric, filter_key)] = float(value)
        record = {
            "doc_id": sample.data["doc_id"],
            "target": task.doc_to_target(doc),
            "arguments": [list(i.args) for i in instances],
            "resps": [i.resps for i in instances],
            "filtered_resps": filtered,
            "metrics": per_metric,
        }
        groups = (sample.data["task"],) if len(self._tasks) > 1 else ()
        return SampleScore(sample.id, numeric, groups=groups, details={"lm_eval": _json_safe(record)})

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        """lm-eval's own aggregation (task metrics, group metrics, standard errors) over the stored
        per-sample values; the loaded task objects supply the aggregation functions."""
        from lm_eval.evaluator_utils import _process_results

        acc: dict[str, Any] = {
            name: {"task": task, "raw_metrics": defaultdict(list), "logged_samples": []} for name, task in self._tasks.items()
        }
        for score in scores:
            task_name = score.sample_id.rsplit("/", 1)[0]
            for key, value in score.details["lm_eval"]["metrics"].items():
                metric, _, filter_key = key.rpartition(",")
                acc[task_name]["raw_metrics"][(metric, filter_key)].append(value)
        results = _process_results(acc, self._groups, BOOTSTRAP_ITERS)._to_eval_results()
        out = []
        for name, entry in results["results"].items():
            prefix = "" if name == self.task_name else f"{name}/"
            n = int(entry.get("sample_len") or len(scores))
            for key, value in entry.items():
                metric, sep, filter_key = key.partition(",")
                if not sep or metric.endswith("_stderr") or not isinstance(value, int | float):
                    continue
                stderr = entry.get(f"{metric}_stderr,{filter_key}")
                out.append(
                    MetricValue(
                        prefix + metric_key(metric, filter_key),
                        float(value),
                        float(stderr) if isinstance(stderr, int | float) else None,
                        n,
                        self._higher.get(metric, True),
                    )
                )
        return out
