"""harness: fine-tune LLMs, score every checkpoint on standard suites, gate releases, watch drift."""

__version__ = "0.1.0"
