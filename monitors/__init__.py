"""Monitors: drift and RAG-extraction regressions between runs (read-only over the store)."""
