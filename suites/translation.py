"""Machine translation: BLEU, chrF, chrF++ and TER through sacrebleu, optionally COMET.

Corpus-level BLEU/chrF/TER are not means of sentence scores (BLEU pools n-gram counts over the
corpus), so `aggregate` re-runs sacrebleu's `corpus_score` over the stored hypotheses and references
and stores sacrebleu's signature string with each number. Sentence-level scores are stored per
sample so two runs can be paired and bootstrapped. COMET runs in an environment of its own
(`harness comet setup`, see harness/comet.py) because unbabel-comet pins libraries the rest of
the harness has outgrown.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from harness.config import GenerationConfig
from harness.datafiles import read_jsonl, read_text
from harness.errors import ConfigError, DataError
from harness.types import Completion, Message, MetricSpec, MetricValue, Request, Sample, SampleScore
from suites.base import Suite, mean_metrics
from suites.translation_corpus import (
    SACREBLEU_METRICS,
    corpus_metric,
    corpus_sacrebleu,
    corpus_target_lang,
    sacrebleu_metric,
)

DATA_DIR = Path(__file__).parent / "data"

DEFAULT_COMET_MODEL = "Unbabel/wmt22-comet-da"

DEFAULT_PROMPT = (
    "Translate the following text from {source_name} into {target_name}. "
    "Reply with the {target_name} translation only.\n\n{src}"
)
_PLACEHOLDERS = {"src", "source_lang", "target_lang", "source_name", "target_name"}

LANGUAGE_NAMES = {
    "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "es": "Spanish", "et": "Estonian", "fa": "Persian", "fi": "Finnish",
    "fr": "French", "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese", "kk": "Kazakh", "km": "Khmer",
    "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish",
    "ps": "Pashto", "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak", "sl": "Slovenian",
    "sv": "Swedish", "ta": "Tamil", "th": "Thai", "tr": "Turkish", "uk": "Ukrainian", "vi": "Vietnamese",
    "zh": "Chinese",
}
_OPTIONS = (
    "source_lang", "target_lang", "refs", "prompt", "prompts", "metrics", "tokenize", "bootstrap",
    "comet", "comet_env", "comet_batch_size",
)


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code.lower(), code)


def _as_list(value: Any, option: str) -> list[str]:
    """A list option given as a YAML list or as a comma-separated string on the command line."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return [str(v) for v in value]
    raise ConfigError(f"suite 'translation': option '{option}' must be a list or a comma-separated string")


def _check_template(template: Any, where: str) -> str:
    if not isinstance(template, str):
        raise ConfigError(f"{where}: a prompt template must be a string")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ConfigError(f"{where}: bad prompt template ({exc})") from None
    unknown = names - _PLACEHOLDERS
    if unknown:
        raise ConfigError(f"{where}: unknown placeholder(s) {sorted(unknown)} (allowed: {sorted(_PLACEHOLDERS)})")
    if "src" not in names:
        raise ConfigError(f"{where}: the prompt template must contain {{src}}")
    return template


def extract_translation(completion: str, source: str) -> str:
    """The hypothesis from a raw completion: stripped; for a one-line source, the first non-empty
    line (chat models like to add a note after the translation)."""
    text = completion.strip()
    if "\n" not in source.strip():
        text = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return text


class TranslationSuite(Suite):
    name = "translation"
    version = "1.0"
    primary_metric = "bleu"
    metrics = (
        MetricSpec("bleu", True, "corpus BLEU (sacrebleu, 13a unless the target language needs its own tokenizer)"),
        MetricSpec("chrf", True, "corpus chrF, character n-grams only (word order 0): what WMT tables report"),
        MetricSpec("chrf++", True, "corpus chrF++ (word order 2): what the fine-tuning literature reports"),
        MetricSpec("ter", False, "corpus translation edit rate (lower is better)"),
        MetricSpec("comet", True, "COMET system score (mean of segment scores) against the first reference"),
    )

    def __init__(self, options: Mapping[str, Any] | None = None, generation: GenerationConfig | None = None) -> None:
        super().__init__(options, generation)
        opts = self.options
        for key in ("source_lang", "target_lang"):
            value = opts.get(key)
            if value is not None and (not isinstance(value, str) or not value or "-" in value):
                raise ConfigError(
                    f"suite 'translation': option '{key}' must be a language code such as 'de' "
                    f"(got {value!r}; quote codes like 'no' in YAML)"
                )
        self.source_lang: str | None = opts.get("source_lang")
        self.target_lang: str | None = opts.get("target_lang")
        self.ref_files = _as_list(opts["refs"], "refs") if "refs" in opts else []
        self.metric_names = _as_list(opts.get("metrics", ",".join(SACREBLEU_METRICS)), "metrics")
        unknown = set(self.metric_names) - set(SACREBLEU_METRICS)
        if unknown or not self.metric_names:
            raise ConfigError(f"suite 'translation': option 'metrics' takes some of {', '.join(SACREBLEU_METRICS)}")
        self.tokenize: str | None = opts.get("tokenize")
        self.bootstrap: int = self.number_option("bootstrap", 1000, minimum=0)  # 0 turns it off
        self.default_prompt = _check_template(opts.get("prompt", DEFAULT_PROMPT), "option 'prompt'")
        self.prompts = self._load_prompts(opts.get("prompts"))
        self.comet = self._comet_scorer(opts)
        self._sentence_metrics: dict[tuple[str, str | None], Any] = {}
        if self.tokenize is not None:
            self._sacrebleu("bleu", self.target_lang)  # an unknown tokenizer is a config error now, not after generating

    # ---- options ----------------------------------------------------------------------------

    def allowed_options(self) -> Sequence[str]:
        return _OPTIONS

    @staticmethod
    def _load_prompts(value: Any) -> dict[str, str]:
        """Per-direction templates: a mapping {"de-en": template} (YAML config) or a YAML file of one."""
        if value is None:
            return {}
        where = "option 'prompts'"
        if isinstance(value, str):
            where = value
            try:
                value = yaml.safe_load(read_text(value))
            except yaml.YAMLError as exc:
                raise ConfigError(f"{where}: not valid YAML: {exc}") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping of direction (e.g. de-en) to prompt template")
        return {str(k): _check_template(v, f"{where}, direction '{k}'") for k, v in value.items()}

    def _comet_scorer(self, opts: Mapping[str, Any]) -> Any:
        model = opts.get("comet")
        if model is None or str(model).lower() in ("", "false", "no", "off", "0"):
            return None
        if str(model).lower() in ("true", "yes", "on", "1", "default"):
            model = DEFAULT_COMET_MODEL
        from harness.comet import CometScorer, comet_env_dir

        try:
            batch_size = int(opts.get("comet_batch_size", 16))
        except (TypeError, ValueError):
            raise ConfigError("suite 'translation': option 'comet_batch_size' must be an integer") from None
        return CometScorer(str(model), comet_env_dir(opts.get("comet_env")), batch_size=batch_size)

    def identity_files(self) -> Sequence[str]:
        files = list(self.ref_files)
        if isinstance(self.options.get("prompts"), str):
            files.append(self.options["prompts"])
        if self.comet is not None and self.comet.is_local:
            files.append(self.comet.model)
        return files

    def close(self) -> None:
        if self.comet is not None:
            self.comet.close()

    def default_data(self) -> str:
        return str(DATA_DIR / "translation_sample.jsonl")

    # ---- loading ----------------------------------------------------------------------------

    def load(self, source: str) -> list[Sample]:
        path = Path(source)
        if path.suffix in (".jsonl", ".json"):
            if self.ref_files:
                raise ConfigError(f"{path}: JSONL data carries its own references; drop option 'refs'")
            samples = self._load_jsonl(path)
        else:
            samples = self._load_text(path)
        seen: dict[str, str] = {}
        for s in samples:
            if s.id in seen:
                raise DataError(str(path), None, "id", f"duplicate id '{s.id}' ({seen[s.id]} and {s.source})")
            seen[s.id] = s.source
            if s.data["target_lang"] is None:
                raise ConfigError(
                    f"{s.source}: no target language: pass --target-lang (and --source-lang), "
                    "or give each row a lang_pair such as de-en"
                )
        return samples

    def _sample(self, sample_id: str, src: str, refs: list[str], source: str, pair: str | None) -> Sample:
        src_lang, tgt_lang = self.source_lang, self.target_lang
        if pair:
            src_lang, _, tgt_lang = pair.partition("-")
        return Sample(sample_id, {"src": src, "refs": refs, "source_lang": src_lang, "target_lang": tgt_lang}, source)

    def _load_jsonl(self, path: Path) -> list[Sample]:
        out = []
        for line, row in read_jsonl(path):
            for field in ("src", "ref"):
                if field not in row or row[field] is None:
                    raise DataError(str(path), line, field, "missing")
            src, ref = row["src"], row["ref"]
            if not isinstance(src, str):
                raise DataError(str(path), line, "src", f"expected a string, got {type(src).__name__}")
            if not src.strip():
                raise DataError(str(path), line, "src", "empty source segment")
            refs = ref if isinstance(ref, list) else [ref]
            if not refs:
                raise DataError(str(path), line, "ref", "empty list of references")
            for i, r in enumerate(refs):
                field = "ref" if not isinstance(ref, list) else f"ref[{i}]"
                if not isinstance(r, str):
                    raise DataError(str(path), line, field, f"expected a string, got {type(r).__name__}")
                if not r.strip():
                    raise DataError(str(path), line, field, "empty reference")
            pair = row.get("lang_pair")
            if pair is not None and (not isinstance(pair, str) or pair.count("-") != 1 or not all(pair.split("-"))):
                raise DataError(str(path), line, "lang_pair", f"expected 'SRC-TGT' such as 'de-en', got {pair!r}")
            sample_id = row.get("id", line)
            if not isinstance(sample_id, str | int) or isinstance(sample_id, bool):
                raise DataError(str(path), line, "id", f"expected a string or integer, got {type(sample_id).__name__}")
            out.append(self._sample(str(sample_id), src, list(refs), f"{path}:{line}", pair))
        return out

    def _load_text(self, path: Path) -> list[Sample]:
        """Aligned plain text, one segment per line: the source file plus one file per reference.
        Sample ids are line numbers (1-based), the convention the file backend's outputs follow."""
        if not self.ref_files:
            raise ConfigError(
                f"{path}: plain-text source needs its reference file(s): --option refs=REF_A[,REF_B] "
                "(or JSONL data with {src, ref})"
            )
        sources = _read_lines(path)
        columns = []
        for ref_file in self.ref_files:
            lines = _read_lines(Path(ref_file))
            if len(lines) != len(sources):
                shorter = min(len(lines), len(sources))
                raise DataError(
                    ref_file, shorter + 1, None,
                    f"has {len(lines)} lines but the source {path} has {len(sources)}: files must be aligned line by line",
                )
            columns.append(lines)
        out = []
        for i, src in enumerate(sources):
            if not src.strip():
                raise DataError(str(path), i + 1, None, "empty source segment")
            refs = [col[i] for col in columns]
            for ref_file, ref in zip(self.ref_files, refs, strict=True):
                if not ref.strip():
                    raise DataError(ref_file, i + 1, None, "empty reference")
            out.append(self._sample(str(i + 1), src, refs, f"{path}:{i + 1}", None))
        return out

    # ---- requests ---------------------------------------------------------------------------

    def template(self, source_lang: str | None, target_lang: str) -> str:
        return self.prompts.get(f"{source_lang}-{target_lang}", self.prompts.get("default", self.default_prompt))

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        if stage > 0:
            return []
        src_lang, tgt_lang = sample.data["source_lang"], sample.data["target_lang"]
        prompt = self.template(src_lang, tgt_lang).format(
            src=sample.data["src"],
            source_lang=src_lang or "",
            target_lang=tgt_lang,
            source_name=language_name(src_lang) if src_lang else "the source language",
            target_name=language_name(tgt_lang),
        )
        g = self.generation
        return [
            Request(
                kind="generate",
                messages=(Message("user", prompt),),
                max_new_tokens=g.max_new_tokens,
                temperature=g.temperature,
                top_p=g.top_p,
                seed=g.seed,
                sample_id=sample.id,
            )
        ]

    # ---- scoring ----------------------------------------------------------------------------

    def _sacrebleu(self, name: str, target_lang: str | None) -> Any:
        return sacrebleu_metric(name, self.tokenize, target_lang)

    @classmethod
    def corpus_metric(cls, metric: str, options: Mapping[str, Any]) -> Any:
        """bleu, chrf, chrf++ and ter are corpus statistics: the gate resamples segments (Koehn 2004)."""
        return corpus_metric(metric, options)

    def _sentence_metric(self, name: str, target_lang: str | None) -> Any:
        """Sentence scorers are reused: `sentence_score` is given its references and caches none."""
        key = (name, target_lang)
        if key not in self._sentence_metrics:
            self._sentence_metrics[key] = sacrebleu_metric(name, self.tokenize, target_lang, sentence=True)
        return self._sentence_metrics[key]

    def _sentence_scores(self, hypothesis: str, refs: list[str], target_lang: str | None) -> dict[str, float]:
        # Named sentence_*: the mean of sentence BLEU is not corpus BLEU, and must never pass for it.
        return {
            f"sentence_{name}": float(self._sentence_metric(name, target_lang).sentence_score(hypothesis, refs).score)
            for name in self.metric_names
        }

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        return self.score_batch([sample], [completions])[0]

    def score_batch(
        self, samples: Sequence[Sample], completions: Sequence[Sequence[Sequence[Completion]]]
    ) -> list[SampleScore]:
        hyps = [extract_translation(c[0][0].text, s.data["src"]) for s, c in zip(samples, completions, strict=True)]
        comet: dict[str, list[float]] = {}
        comet_info: dict[str, Any] = {}
        if self.comet is not None and samples:
            n_refs = max(len(s.data["refs"]) for s in samples)
            for k in range(n_refs):
                have = [i for i, s in enumerate(samples) if len(s.data["refs"]) > k]
                rows = [{"src": samples[i].data["src"], "mt": hyps[i], "ref": samples[i].data["refs"][k]} for i in have]
                scores = self.comet.score(rows)
                name = "comet" if k == 0 else f"comet_ref{k + 1}"
                comet[name] = [float("nan")] * len(samples)
                for i, value in zip(have, scores, strict=True):
                    comet[name][i] = value
            comet_info = self.comet.info()
        out = []
        for i, (sample, hyp) in enumerate(zip(samples, hyps, strict=True)):
            refs = sample.data["refs"]
            scores = self._sentence_scores(hyp, refs, sample.data["target_lang"])
            scores.update({name: values[i] for name, values in comet.items() if values[i] == values[i]})
            details: dict[str, Any] = {
                "hypothesis": hyp,
                "references": refs,
                "direction": f"{sample.data['source_lang'] or ''}-{sample.data['target_lang']}",
            }
            if comet_info:
                details["comet"] = comet_info
            out.append(SampleScore(sample.id, scores, details=details))
        return out

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        """Corpus-level sacrebleu scores with their signatures, overall and per direction when the
        data mixes directions; COMET's system score is the mean of its segment scores."""
        by_direction: dict[str, list[SampleScore]] = defaultdict(list)
        for s in scores:
            by_direction[str(s.details.get("direction", ""))].append(s)
        out = self._corpus(scores, "")
        if len(by_direction) > 1:
            for direction in sorted(by_direction):
                out += self._corpus(by_direction[direction], f"{direction}/")
        return sorted(out, key=lambda m: m.name)

    def _corpus(self, scores: Sequence[SampleScore], prefix: str) -> list[MetricValue]:
        if not scores:
            return []
        hyps = [str(s.details["hypothesis"]) for s in scores]
        ref_lists = [list(s.details["references"]) for s in scores]
        target_lang = corpus_target_lang([str(s.details.get("direction", "-")) for s in scores])
        present = [m for m in self.metric_names if all(f"sentence_{m}" in s.scores or m in s.scores for s in scores)]
        out = [
            corpus_sacrebleu(name, hyps, ref_lists, self.tokenize, target_lang, self.bootstrap, prefix + name)
            for name in present
        ]
        neural = [
            SampleScore(s.sample_id, {k: v for k, v in s.scores.items() if k.startswith("comet")}) for s in scores
        ]
        for m in mean_metrics(neural, self.spec):
            info: Mapping[str, Any] = next((s.details["comet"] for s in scores if s.details.get("comet")), {})
            out.append(MetricValue(prefix + m.name, m.value, m.stderr, m.n, m.higher_is_better,
                                   details={"level": "mean of segment scores", **dict(info or {})}))
        return out


def _read_lines(path: Path) -> list[str]:
    """Lines of an aligned text file as the sacrebleu command line reads them (trailing whitespace
    stripped); a missing, empty or non-UTF-8 file is a DataError."""
    text = read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]
