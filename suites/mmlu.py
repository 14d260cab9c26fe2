"""MMLU (Hendrycks et al.): 57 subjects, k-shot from the dev split, scored like lm-eval 0.4.

The prompt is lm-eval's `mmlu` task to the character: the subject header, the first k dev questions
with their answers, then the test question; each of the four letters is scored as the continuation
" A" .. " D" by log-likelihood, and the most likely letter is the model's answer. The numbers are
therefore lm-eval's (a test runs lm-eval itself and compares subject by subject).

Aggregates: accuracy per subject, per category (lm-eval's subject -> category mapping), the micro
average over all questions (`acc`, lm-eval's headline `mmlu` number, weighted by size) and the macro
average over subjects (`acc_macro`, what some papers report): both are named so they are never mixed
up (lm-eval issue #1525).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.datafiles import read_csv, read_jsonl
from harness.errors import ConfigError, DataError
from harness.types import Completion, MetricSpec, MetricValue, Request, Sample, SampleScore
from suites.base import Suite

DATA_DIR = Path(__file__).parent / "data"
HUB_ID = "cais/mmlu"
LETTERS = ("A", "B", "C", "D")

#: lm-eval's subject -> category mapping (lm_eval/tasks/mmlu/_generate_configs.py).
SUBJECTS: dict[str, str] = {
    "abstract_algebra": "stem", "anatomy": "stem", "astronomy": "stem", "business_ethics": "other",
    "clinical_knowledge": "other", "college_biology": "stem", "college_chemistry": "stem",
    "college_computer_science": "stem", "college_mathematics": "stem", "college_medicine": "other",
    "college_physics": "stem", "computer_security": "stem", "conceptual_physics": "stem",
    "econometrics": "social_sciences", "electrical_engineering": "stem", "elementary_mathematics": "stem",
    "formal_logic": "humanities", "global_facts": "other", "high_school_biology": "stem",
    "high_school_chemistry": "stem", "high_school_computer_science": "stem",
    "high_school_european_history": "humanities", "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences", "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem", "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem", "high_school_psychology": "social_sciences", "high_school_statistics": "stem",
    "high_school_us_history": "humanities", "high_school_world_history": "humanities", "human_aging": "other",
    "human_sexuality": "social_sciences", "international_law": "humanities", "jurisprudence": "humanities",
    "logical_fallacies": "humanities", "machine_learning": "stem", "management": "other", "marketing": "other",
    "medical_genetics": "other", "miscellaneous": "other", "moral_disputes": "humanities",
    "moral_scenarios": "humanities", "nutrition": "other", "philosophy": "humanities", "prehistory": "humanities",
    "professional_accounting": "other", "professional_law": "humanities", "professional_medicine": "other",
    "professional_psychology": "social_sciences", "public_relations": "social_sciences",
    "security_studies": "social_sciences", "sociology": "social_sciences", "us_foreign_policy": "social_sciences",
    "virology": "other", "world_religions": "humanities",
}  # fmt: skip
CATEGORIES = ("stem", "humanities", "social_sciences", "other")


def doc_to_text(question: str, choices: Sequence[str]) -> str:
    """lm-eval's `doc_to_text` for MMLU: the stripped question, lettered choices, `Answer:`."""
    lines = [question.strip()] + [f"{letter}. {choice}" for letter, choice in zip(LETTERS, choices, strict=True)]
    return "\n".join(lines) + "\nAnswer:"


def header(subject: str) -> str:
    """lm-eval's task description for one subject."""
    return f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"


def fewshot_prefix(subject: str, shots: Sequence[Mapping[str, Any]]) -> str:
    """Description plus k answered examples joined by blank lines (lm-eval's first_n sampler)."""
    examples = [doc_to_text(d["question"], d["choices"]) + " " + LETTERS[d["answer"]] for d in shots]
    return header(subject) + "".join(e + "\n\n" for e in examples)


class MMLUSuite(Suite):
    name = "mmlu"
    version = "1.0"
    primary_metric = "acc"
    metrics = (
        MetricSpec("acc", True, "accuracy over all questions (micro average; lm-eval's headline mmlu number)"),
        MetricSpec("acc_macro", True, "mean of the per-subject accuracies (macro average)"),
    )

    def __init__(self, options: Mapping[str, Any] | None = None, generation: Any = None) -> None:
        super().__init__(options, generation)
        self.num_fewshot: int = self.number_option("num_fewshot", 5, minimum=0)
        self.per_subject_limit: int | None = self.number_option("per_subject_limit", None, minimum=1)
        self.subjects = self._subjects_option()
        self._prefix: dict[str, str] = {}

    def allowed_options(self) -> Sequence[str]:
        return ("subjects", "num_fewshot", "per_subject_limit")

    def _subjects_option(self) -> list[str] | None:
        raw = self.options.get("subjects")
        if raw is None:
            return None
        names = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else [str(s) for s in raw]
        names = [n for n in names if n]
        unknown = [n for n in names if n not in SUBJECTS]
        if unknown or not names:
            raise ConfigError(f"suite 'mmlu': unknown subject(s) {unknown or names}; known: {', '.join(SUBJECTS)}")
        return names

    def default_data(self) -> str:
        return str(DATA_DIR / "mmlu_sample")

    # ---- loading ----------------------------------------------------------------------------

    def load(self, source: str) -> list[Sample]:
        """Read the test questions and keep the dev questions each subject's prefix is built from."""
        dev, test = load_mmlu(source)
        # A subject outside the 57 (a user's own `mydomain_test.csv`) is scored too, in category "other":
        # never silently dropped.
        wanted = self.subjects or [s for s in SUBJECTS if s in test] + sorted(s for s in test if s not in SUBJECTS)
        missing = [s for s in wanted if s not in test]
        if missing and self.subjects:
            raise DataError(source, None, None, f"no test questions for subject(s) {missing}")
        samples = []
        for subject in wanted:
            shots = dev.get(subject, [])
            if len(shots) < self.num_fewshot:
                problem = f"subject '{subject}' has {len(shots)} dev questions, {self.num_fewshot}-shot needs more"
                raise DataError(source, None, None, problem)
            self._prefix[subject] = fewshot_prefix(subject, shots[: self.num_fewshot])
            rows = test[subject][: self.per_subject_limit] if self.per_subject_limit else test[subject]
            for index, row in enumerate(rows):
                data = {"subject": subject, "question": row["question"], "choices": list(row["choices"]), "answer": row["answer"]}
                samples.append(Sample(f"{subject}/{index}", data, row.get("source", "")))
        if not samples:
            raise DataError(source, None, None, "no MMLU test questions found")
        return samples

    def sample_input(self, sample: Sample) -> dict[str, Any]:
        return dict(sample.data)

    # ---- requests and scoring ---------------------------------------------------------------

    def prompt(self, sample: Sample) -> str:
        subject = sample.data["subject"]
        if subject not in self._prefix:
            raise RuntimeError("MMLUSuite.load must run before requests")
        return self._prefix[subject] + doc_to_text(sample.data["question"], sample.data["choices"])

    def requests(self, sample: Sample, stage: int, prior: Sequence[Sequence[Completion]]) -> list[Request]:
        if stage > 0:
            return []
        prompt = self.prompt(sample)
        return [Request(kind="loglikelihood", prompt=prompt, continuation=" " + letter) for letter in LETTERS]

    def score(self, sample: Sample, completions: Sequence[Sequence[Completion]]) -> SampleScore:
        logprobs = [float(c.logprob) if c.logprob is not None else -math.inf for c in completions[0]]
        # lm-eval takes np.argmax: the first of equal maxima wins.
        chosen = max(range(len(logprobs)), key=lambda i: (logprobs[i], -i))
        gold = int(sample.data["answer"])
        subject = sample.data["subject"]
        return SampleScore(
            sample.id,
            {"acc": float(chosen == gold)},
            groups=(f"subject/{subject}", f"category/{SUBJECTS.get(subject, 'other')}"),
            details={"chosen": LETTERS[chosen], "gold": LETTERS[gold], "logprobs": logprobs},
        )

    def aggregate(self, scores: Sequence[SampleScore]) -> list[MetricValue]:
        """Micro averages (overall, per category, per subject) plus the macro average over subjects.

        The macro average's standard error combines the subjects' errors as independent:
        sqrt(sum se_s^2) / n_subjects.
        """
        values = super().aggregate(scores)
        per_subject = [m for m in values if m.name.startswith("subject/") and m.name.endswith("/acc")]
        if per_subject:
            mean = sum(m.value for m in per_subject) / len(per_subject)
            se = math.sqrt(sum((m.stderr or 0.0) ** 2 for m in per_subject)) / len(per_subject)
            values.append(MetricValue("acc_macro", mean, se, len(per_subject), True))
        return values




# ---- data sources ------------------------------------------------------------------------------

Split = dict[str, list[dict[str, Any]]]
_SPLIT_FILE = re.compile(r"^(?P<split>dev|test|validation|auxiliary_train)(?:[-_.].*)?\.(?P<ext>parquet|jsonl|json)$")


def load_mmlu(source: str) -> tuple[Split, Split]:
    """(dev, test) questions by subject from a CSV folder, a hub-layout folder or the hub id."""
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "test").is_dir() and any((path / "test").glob("*_test.csv")):
            return _load_csv_split(path / "dev", "dev"), _load_csv_split(path / "test", "test")
        return _load_hub_folder(path)
    if path.exists():
        raise DataError(source, None, None, "expected a folder (dev/ and test/ CSVs, or hub parquet/JSON files)")
    if source == HUB_ID or (source.count("/") == 1 and not source.startswith((".", "/", "~"))):
        return _load_hub_id(source)
    raise DataError(source, None, None, "no such folder")


def _load_csv_split(folder: Path, split: str) -> Split:
    """The original release: `SUBJECT_{split}.csv`, no header, rows `question,A,B,C,D,answer`."""
    out: Split = {}
    files = sorted(folder.glob(f"*_{split}.csv")) if folder.is_dir() else []
    if not files:
        raise DataError(str(folder), None, None, f"no *_{split}.csv files")
    for file in files:
        subject = file.name[: -len(f"_{split}.csv")]
        rows = []
        for line, row in read_csv(file, header=False):
            assert isinstance(row, list)
            if len(row) != 6:
                raise DataError(str(file), line, None, f"expected 6 columns (question,A,B,C,D,answer), found {len(row)}")
            answer = row[5].strip()
            if answer not in LETTERS:
                raise DataError(str(file), line, "answer", f"expected one of A, B, C, D, got {row[5]!r}")
            rows.append({"question": row[0], "choices": row[1:5], "answer": LETTERS.index(answer), "source": f"{file}:{line}"})
        out[subject] = rows
    return out


def _hub_row(row: Mapping[str, Any], where: str, line: int | None) -> dict[str, Any]:
    for key in ("question", "subject", "choices", "answer"):
        if key not in row or row[key] is None:
            raise DataError(where, line, key, "missing")
    choices = list(row["choices"])
    if len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        raise DataError(where, line, "choices", f"expected 4 strings, got {choices!r}")
    answer = row["answer"]
    if isinstance(answer, str) and answer.strip() in LETTERS:
        answer = LETTERS.index(answer.strip())
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
        raise DataError(where, line, "answer", f"expected 0-3 or A-D, got {row['answer']!r}")
    if not isinstance(row["question"], str):
        raise DataError(where, line, "question", "expected a string")
    return {"question": row["question"], "choices": choices, "answer": answer, "subject": str(row["subject"]),
            "source": f"{where}:{line}" if line else where}


def _collect(rows: Iterable[dict[str, Any]], into: Split) -> None:
    for r in rows:
        into.setdefault(r["subject"], []).append(r)


def _load_hub_folder(folder: Path) -> tuple[Split, Split]:
    """The hub layout (`question, subject, choices, answer`) as parquet, JSON or JSONL files named
    `dev*`/`test*`. When an `all/` folder exists (as in `cais/mmlu`) only it is read, so the
    per-subject copies are not counted twice."""
    root = folder / "all" if (folder / "all").is_dir() else folder
    splits: dict[str, Split] = {"dev": {}, "test": {}}
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        match = _SPLIT_FILE.match(file.name)
        if not match or match["split"] not in splits:
            continue
        _collect(_read_hub_file(file, match["ext"]), splits[match["split"]])
    if not splits["test"]:
        raise DataError(str(folder), None, None, "no MMLU data: expected dev/ and test/ CSV folders or dev*/test* parquet/JSON files")
    return splits["dev"], splits["test"]


def _read_hub_file(file: Path, ext: str) -> list[dict[str, Any]]:
    if ext == "jsonl":
        return [_hub_row(row, str(file), line) for line, row in read_jsonl(file)]
    if ext == "json":
        from harness.datafiles import read_json

        doc = read_json(file)
        if not isinstance(doc, list):
            raise DataError(str(file), None, None, "expected a JSON list of questions")
        return [_hub_row(row if isinstance(row, dict) else {}, str(file), i + 1) for i, row in enumerate(doc)]
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(file)
    except Exception as exc:
        raise DataError(str(file), None, None, f"not a readable parquet file ({exc})") from None
    return [_hub_row(row, str(file), i + 1) for i, row in enumerate(table.to_pylist())]


def _load_hub_id(hub_id: str) -> tuple[Split, Split]:  # pragma: no cover - needs network
    """`cais/mmlu` from the Hugging Face hub (config `all`), for users with network."""
    try:
        import datasets
    except ImportError:
        raise ConfigError("loading MMLU from the hub needs `datasets`: pip install 'harness-eval[lm-eval]'") from None
    try:
        data = datasets.load_dataset(hub_id, "all")
    except Exception as exc:
        raise DataError(hub_id, None, None, f"cannot load from the hub: {exc}") from None
    splits: dict[str, Split] = {"dev": defaultdict(list), "test": defaultdict(list)}
    for split in splits:
        for i, row in enumerate(data[split]):
            _collect([_hub_row(row, f"{hub_id}[{split}]", i + 1)], splits[split])
    return dict(splits["dev"]), dict(splits["test"])


# ---- lm-eval task definitions for local data (fidelity tests, the speed benchmark, users) ---------


def write_lmeval_tasks(source: str, out_dir: str | Path, subjects: Sequence[str] | None = None,
                       per_subject_limit: int | None = None) -> list[str]:
    """Write MMLU from `source` as per-subject parquet files plus lm-eval task YAMLs that include
    lm-eval's own built-in subject definitions (prompt, description, few-shot sampler, metric) and
    only point the data at these files. Returns the task names (`mmlu_local_SUBJECT`; the group
    `mmlu_local` weights them by size like lm-eval's `mmlu`); pass `out_dir` as lm-eval's include
    path. Needs lm-eval installed (its task folder is referenced)."""
    import lm_eval
    import pyarrow as pa
    import pyarrow.parquet as pq

    builtin = Path(lm_eval.__file__).parent / "tasks" / "mmlu" / "default"
    dev, test = load_mmlu(source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for subject in subjects or [s for s in SUBJECTS if s in test]:
        files = {}
        for split, rows in (("dev", dev[subject]), ("test", test[subject][:per_subject_limit])):
            table = pa.Table.from_pylist([
                {"question": r["question"], "subject": subject, "choices": list(r["choices"]), "answer": r["answer"]}
                for r in rows
            ])
            files[split] = out / f"{subject}_{split}.parquet"
            pq.write_table(table, files[split])
        name = f"mmlu_local_{subject}"
        (out / f"{name}.yaml").write_text(
            # Paths as JSON strings, which YAML reads verbatim (spaces, colons).
            f"include: {json.dumps(str(builtin / f'mmlu_{subject}.yaml'))}\n"
            f"task: {name}\n"
            "tag: null\n"
            f"task_alias: {subject}\n"
            "dataset_path: parquet\n"
            "dataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n    dev: {json.dumps(str(files['dev']))}\n    test: {json.dumps(str(files['test']))}\n",
            encoding="utf-8",
        )
        names.append(name)
    group = "\n".join(f"  - {n}" for n in names)
    (out / "mmlu_local.yaml").write_text(
        f"group: mmlu_local\ntask:\n{group}\naggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
        "metadata:\n  version: 2\n",
        encoding="utf-8",
    )
    return names
