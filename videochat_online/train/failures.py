"""Samples that failed to load, counted once each over the whole run: each batch carries the samples that
failed while it was assembled (`failed_samples`), and a `FailureLedger` in the trainer's process gathers the
distinct ones of every rank (DataLoader workers are separate processes, so a count kept in the dataset would
be lost) for the logs, `failed_samples.json` and the decision to stop.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import InputError, VideoChatOnlineError


class FailedSamplesError(VideoChatOnlineError):
    """Too many samples failed to load: the data, not a sample, is the problem."""


class FailureLedger:
    FIRST = 20  # reasons kept in the report

    def __init__(self, limit: int):
        self.limit = limit
        self.failed: dict[str, str] = {}  # "dataset/entry" -> reason, this process's

    def add(self, failures) -> None:
        for key, reason in failures:
            self.failed.setdefault(key, reason)

    def gathered(self) -> dict[str, str]:
        """The distinct failed samples of every rank (a collective call: every rank must make it)."""
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return dict(self.failed)
        parts = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(parts, self.failed)
        merged: dict[str, str] = {}
        for part in parts:
            for key, reason in part.items():
                merged.setdefault(key, reason)
        return merged

    def check(self, failed: dict[str, str]) -> None:
        """Stop the run once more than `limit` distinct samples have failed (the same decision on every rank)."""
        if len(failed) > self.limit:
            key, reason = next(iter(failed.items()))
            raise FailedSamplesError(f"{len(failed)} samples failed to load, more than max_failed_samples="
                                     f"{self.limit}; the first: {key}: {reason}")

    LEDGER = "failed_samples_ledger.json"  # every failed sample, kept in each checkpoint folder for a resume

    def save(self, checkpoint: str | Path, failed: dict[str, str]) -> None:
        """Keep every failed sample beside a checkpoint, so that a run resumed from it counts them too."""
        (Path(checkpoint) / self.LEDGER).write_text(json.dumps(failed, ensure_ascii=False))

    def restore(self, checkpoint: str | Path) -> None:
        """The failed samples of the run up to `checkpoint` (none when it kept no ledger)."""
        file = Path(checkpoint) / self.LEDGER
        if not file.is_file():
            return
        try:
            ledger = json.loads(file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            ledger = None
        if not isinstance(ledger, dict) or not all(isinstance(v, str) for v in ledger.values()):
            raise InputError(f"{file}: not a JSON object of failed samples (sample -> reason); restore it or delete "
                             "it (the resumed run then counts only its own failures)")
        self.failed.update(ledger)

    def write(self, out_dir: str | Path, failed: dict[str, str]) -> Path:
        path = Path(out_dir) / "failed_samples.json"
        first = [{"sample": k, "reason": r} for k, r in sorted(failed.items())[: self.FIRST]]
        path.write_text(json.dumps({"total": len(failed), "first": first}, indent=2, ensure_ascii=False))
        return path
