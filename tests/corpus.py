"""Locate ../shared/corpus: skip where it is absent, fail instead under CI=true."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The shared folder: $POCWATCH_SHARED, else ../shared beside the repo root."""
    configured = os.environ.get("POCWATCH_SHARED")
    return Path(configured) if configured else REPO_ROOT.parent / "shared"


def corpus_dir() -> Path:
    """The email corpus, or skip the test (fail under CI, where it must be present)."""
    path = shared_dir() / "corpus"
    if not path.is_dir():
        reason = f"email corpus not found at {path} (set POCWATCH_SHARED)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason)
        pytest.skip(reason)
    return path
