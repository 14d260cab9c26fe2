"""`harness run SUITE...`: build a RunConfig from flags (or a YAML file) and hand it to the Runner."""

from __future__ import annotations

from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.table import Table

from harness.commands.common import DbOption, JsonOption, err, exit_on_error, open_store, out, print_json
from harness.config import (
    GenerationConfig,
    ModelConfig,
    RayConfig,
    RunConfig,
    SuiteConfig,
    format_validation_error,
    load_run_config,
    resolve_db_url,
)
from harness.errors import ConfigError
from harness.logs import stdout_to_stderr
from harness.reasoning import reasoning_settings
from harness.runner import Runner, SuiteResult
from harness.store import safe_url


def _parse_data(values: list[str], suites: list[str]) -> dict[str, str]:
    """`--data PATH` for a single suite, or `--data SUITE=PATH` for several."""
    per_suite: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if sep and name in suites:
            per_suite[name] = path
        elif len(suites) == 1:
            per_suite[suites[0]] = value
        else:
            raise ConfigError(f"--data '{value}': with several suites, write --data SUITE=PATH")
    return per_suite


def _parse_options(values: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option '{value}': expected KEY=VALUE")
        options[key] = raw
    return options


def _parse_backend_options(values: list[str], base_url: str | None) -> dict[str, Any]:
    """`--backend-option KEY=VALUE`, values read as YAML scalars (so `2` is the number a YAML config
    would give and both spellings hash alike); `--base-url` is shorthand for `base_url=`."""
    options: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--backend-option '{value}': expected KEY=VALUE")
        try:
            options[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            options[key] = raw
    if base_url is not None:
        options["base_url"] = base_url
    return options


def build_config(
    suites: list[str],
    model: str | None,
    adapter: str | None,
    backend: str,
    data: list[str],
    limit: int | None,
    completions: str | None,
    batch_size: int,
    dtype: str,
    device: str,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    trust_remote_code: bool,
    run_name: str | None,
    tags: list[str],
    options: list[str],
    db: str | None,
    judge: ModelConfig | None = None,
    source_lang: str | None = None,
    target_lang: str | None = None,
    num_fewshot: int | None = None,
    include_path: str | None = None,
    backend_options: list[str] | None = None,
    base_url: str | None = None,
    reasoning: dict[str, Any] | None = None,
) -> RunConfig:
    per_suite = _parse_data(data, suites)
    suite_options = _parse_options(options)
    languages = {k: v for k, v in (("source_lang", source_lang), ("target_lang", target_lang)) if v}
    if languages and "translation" not in suites:
        raise ConfigError("--source-lang/--target-lang apply to the translation suite only")
    # Shorthands for suite options (mmlu and lm-eval:TASK take them; other suites reject them).
    if num_fewshot is not None:
        suite_options["num_fewshot"] = num_fewshot
    if include_path is not None:
        suite_options["include_path"] = include_path
    model_options: dict[str, Any] = _parse_backend_options(backend_options or [], base_url)
    if backend == "file" and completions and completions.startswith("run:"):
        model_options["db"] = resolve_db_url(db)
    if backend != "file" and not model:
        raise ConfigError("--model is required (except with --backend file)")
    if backend == "file" and not completions:
        raise ConfigError("--backend file needs --completions FILE.jsonl or --completions run:RUN_ID")
    try:
        return RunConfig(
            suites=[
                SuiteConfig(
                    name=s,
                    data=per_suite.get(s),
                    limit=limit,
                    options=suite_options | languages if s == "translation" else suite_options,
                )
                for s in suites
            ],
            model=ModelConfig(
                path=model,
                adapter=adapter,
                backend=backend,
                dtype=dtype,  # type: ignore[arg-type]
                device=device,
                batch_size=batch_size,
                trust_remote_code=trust_remote_code,
                completions=completions,
                options=model_options,
                **(reasoning or {}),
            ),
            judge=judge,
            generation=GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed),
            run_name=run_name,
            tags=tags,
        )
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None


def build_judge(
    model: str | None,
    backend: str | None,
    completions: str | None,
    options: list[str],
    dtype: str,
    device: str,
    batch_size: int,
    db: str | None,
    reasoning_tags: str | None = None,
) -> ModelConfig | None:
    """The backend answering requests with role "judge" (MT-Bench grading, the safety judge)."""
    if not (model or backend or completions or options):
        return None
    backend = backend or ("file" if completions and not model else "hf")
    judge_options = _parse_options(options)
    if backend == "file":
        if not completions:
            raise ConfigError("--judge-backend file needs --judge-completions FILE.jsonl or run:RUN_ID")
        if completions.startswith("run:"):
            judge_options["db"] = resolve_db_url(db)
    elif not model:
        raise ConfigError("--judge-model is required (except with --judge-backend file)")
    try:
        return ModelConfig(path=model, backend=backend, completions=completions, dtype=dtype,  # type: ignore[arg-type]
                           device=device, batch_size=batch_size, options=judge_options,
                           **reasoning_settings(reasoning_tags, None, []))
    except ValidationError as exc:
        raise ConfigError("judge: " + format_validation_error(exc)) from None


def render_results(results: list[SuiteResult]) -> None:
    for r in results:
        table = Table(title=f"{r.suite}  run {r.run_id}  ({r.n_samples} samples; {r.computed} scored now, {r.reused} resumed)")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("± stderr", justify="right")
        table.add_column("n", justify="right")
        for m in r.metrics:
            arrow = "↑" if m.higher_is_better else "↓"
            stderr = f"{m.stderr:.4f}" if m.stderr is not None else ""
            table.add_row(f"{m.name} {arrow}", f"{m.value:.4f}", stderr, str(m.n))
        out.print(table)


def run(
    suites: Annotated[list[str] | None, typer.Argument(help="Suites to run, e.g. rag-extraction.", show_default=False)] = None,
    config: Annotated[str | None, typer.Option("--config", "-c", help="YAML run configuration (instead of flags).")] = None,
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Model directory or hub id (repeat for a grid of checkpoints).")
    ] = None,
    adapter: Annotated[str | None, typer.Option(help="PEFT adapter directory applied to --model.")] = None,
    backend: Annotated[str, typer.Option(help="hf | vllm | openai | file")] = "hf",
    data: Annotated[list[str] | None, typer.Option(help="Data file (or SUITE=PATH with several suites).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N samples.")] = None,
    completions: Annotated[str | None, typer.Option(help="File backend: JSONL of {id, completion} or run:RUN_ID.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Requests per backend call.")] = 8,
    dtype: Annotated[str, typer.Option(help="auto | float32 | bfloat16 | float16")] = "auto",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    temperature: Annotated[float, typer.Option(min=0.0)] = 0.0,
    seed: Annotated[int, typer.Option()] = 0,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow Python code shipped with a hub model.")] = False,
    run_name: Annotated[str | None, typer.Option(help="Human label for the run.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag the run (repeatable); the gate selects by tag.")] = None,
    option: Annotated[list[str] | None, typer.Option(help="Suite option KEY=VALUE (repeatable).")] = None,
    ray: Annotated[bool, typer.Option("--ray", help="Spread requests over a pool of Ray actors.")] = False,
    ray_address: Annotated[
        str | None, typer.Option(help="Ray cluster to join ('auto', ray://HOST:10001); default starts a local one.")
    ] = None,
    ray_actors: Annotated[int, typer.Option(min=1, help="Backend replicas in the Ray pool.")] = 2,
    ray_gpus_per_actor: Annotated[float, typer.Option(min=0.0, help="GPUs reserved per replica.")] = 0.0,
    judge_model: Annotated[str | None, typer.Option(help="Judge model directory or hub id (mtbench, safety).")] = None,
    judge_backend: Annotated[str | None, typer.Option(help="Judge backend: hf | vllm | openai | file (default hf).")] = None,
    judge_completions: Annotated[
        str | None, typer.Option(help="Judge file backend: JSONL of {id, completion} or run:RUN_ID.")
    ] = None,
    judge_option: Annotated[
        list[str] | None, typer.Option(help="Judge backend option KEY=VALUE (repeatable), e.g. base_url=URL.")
    ] = None,
    source_lang: Annotated[str | None, typer.Option(help="translation: source language code, e.g. de.")] = None,
    target_lang: Annotated[str | None, typer.Option(help="translation: target language code, e.g. en.")] = None,
    num_fewshot: Annotated[int | None, typer.Option(min=0, help="Few-shot examples (mmlu, lm-eval:TASK).")] = None,
    include_path: Annotated[str | None, typer.Option(help="Folder of lm-eval task YAMLs (lm-eval:TASK).")] = None,
    backend_option: Annotated[
        list[str] | None, typer.Option(help="Backend setting KEY=VALUE (repeatable), e.g. tensor_parallel_size=2.")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="openai backend: API root, e.g. http://127.0.0.1:8000/v1.")] = None,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="Hide the progress bar.")] = False,
    reasoning_tags: Annotated[
        str | None, typer.Option(help="Reasoning markers START,END (or think, harmony, none); default: the tokenizer's.")
    ] = None,
    judge_reasoning_tags: Annotated[
        str | None, typer.Option(help="The judge's reasoning markers (its verdict is read after them).")
    ] = None,
    reasoning_max_tokens: Annotated[
        int | None, typer.Option(min=1, help="Thinking budget on top of --max-new-tokens (which then bounds the answer).")
    ] = None,
    chat_template_kwargs: Annotated[
        list[str] | None, typer.Option(help="Chat template setting KEY=VALUE, e.g. enable_thinking=false (repeatable).")
    ] = None,
    db: DbOption = None,
    json_output: JsonOption = False,
) -> None:
    """Score a model on one or more suites; rerunning the same command resumes an unfinished run."""
    with exit_on_error():
        if config:
            if suites:
                raise ConfigError("give suites either on the command line or in --config, not both")
            configs = [load_run_config(config)]
        else:
            if not suites:
                raise ConfigError("name at least one suite, e.g. harness run rag-extraction --model DIR")
            judge = build_judge(judge_model, judge_backend, judge_completions, judge_option or [], dtype, device,
                                batch_size, db, judge_reasoning_tags)
            configs = [
                build_config(
                    suites, m, adapter, backend, data or [], limit, completions, batch_size, dtype, device,
                    max_new_tokens, temperature, seed, trust_remote_code, run_name, tag or [], option or [], db, judge,
                    source_lang=source_lang, target_lang=target_lang, num_fewshot=num_fewshot, include_path=include_path,
                    backend_options=backend_option, base_url=base_url,
                    reasoning=reasoning_settings(reasoning_tags, reasoning_max_tokens, chat_template_kwargs or []),
                )
                for m in (model or [None])  # type: ignore[list-item]
            ]
        if ray or ray_address:
            ray_config = RayConfig(address=ray_address, num_actors=ray_actors, num_gpus_per_actor=ray_gpus_per_actor)
            configs = [c.model_copy(update={"ray": ray_config}) for c in configs]
        _check_task_files(configs)
        if json_output:
            with stdout_to_stderr():  # library logs never reach the JSON document
                results = _run_all(configs, db, show_progress=False)
        else:
            results = _run_all(configs, db, show_progress=not no_progress)
        if json_output:
            print_json({"runs": [r.to_json() for r in results]})
        else:
            render_results(results)
            err.print(f"stored in {safe_url(resolve_db_url(db))}")


def _check_task_files(configs: list[RunConfig]) -> None:
    """Read every task file (`suites: [{name: task.yaml}]`) with its data before the first run starts,
    so a mistake in the second of several suites is reported before any run row exists."""
    from suites import create_suite
    from suites.task_file import is_task_path

    for cfg in configs:
        for s in cfg.suites:
            if is_task_path(s.name):
                suite = create_suite(s.name, s.options, cfg.generation)
                try:
                    suite.load(s.data or suite.default_data())
                finally:
                    suite.close()


def _run_all(configs: list[RunConfig], db: str | None, show_progress: bool) -> list[SuiteResult]:
    """Run every (model, suite) cell; with Ray, one actor pool serves the whole grid."""
    store = open_store(db)
    pool = None
    try:
        ray_config = configs[0].ray
        if ray_config is not None and len(configs) > 1:
            from harness.distributed import RayPool

            pool = RayPool(ray_config)
        results: list[SuiteResult] = []
        for cfg in configs:
            results.extend(Runner(cfg, store, show_progress=show_progress, ray_pool=pool).run())
        return results
    finally:
        if pool is not None:
            pool.shutdown()
        store.close()
