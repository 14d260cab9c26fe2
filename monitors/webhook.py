"""Deliver alarms by HTTP POST (JSON body) with retries and exponential backoff.

Connection errors, timeouts, 429 and 5xx answers are retried; other 4xx answers are not (the
receiver rejected the payload, and sending it again will not help). Uses the standard library only.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from monitors.config import WebhookConfig


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    status: int | None
    error: str | None


def post_json(
    url: str,
    payload: Mapping[str, Any],
    config: WebhookConfig,
    sleep: Callable[[float], None] = time.sleep,
) -> Delivery:
    """POST `payload` to `url`; retry transient failures `config.retries` times, waiting backoff_s * 2**i."""
    if not url.startswith(("http://", "https://")):
        return Delivery(False, 0, None, f"webhook URL must start with http:// or https://, got '{url}'")
    body = json.dumps(payload, default=str).encode("utf-8")
    status: int | None = None
    error: str | None = None
    for attempt in range(config.retries + 1):
        if attempt:
            sleep(config.backoff_s * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "harness-monitor"},
        )
        try:
            with urllib.request.urlopen(request, timeout=config.timeout_s) as response:
                return Delivery(True, attempt + 1, int(response.status), None)
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            if exc.code != 429 and exc.code < 500:
                return Delivery(False, attempt + 1, status, error)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            status, error = None, str(getattr(exc, "reason", exc))
    return Delivery(False, config.retries + 1, status, error)
