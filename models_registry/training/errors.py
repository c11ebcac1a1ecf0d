"""Exceptions raised by the training engine.

The Django side needs exactly three outcomes for a job besides success: failed (with a reason a
person can act on), invalid input (also a failure, raised before any compute is spent) and
cancelled (a clean stop that leaves a checkpoint to resume from). Every exception that escapes
``run_training`` is one of these, so a job is never left marked as running.
"""

from __future__ import annotations


class TrainingFailed(Exception):
    """Training could not complete; ``reason`` is a human-readable sentence for the job page."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidTrainingInput(TrainingFailed, ValueError):
    """The spec, the rows or the work directory are unusable; detected before training starts."""


class TrainingCancelled(Exception):
    """``should_cancel()`` returned true; a checkpoint at ``step`` was written so the run can resume."""

    def __init__(self, step: int, total_steps: int) -> None:
        super().__init__(f"training cancelled at step {step} of {total_steps}; checkpoint saved")
        self.step = step
        self.total_steps = total_steps


class ModelSourceError(ValueError):
    """A base model source cannot be resolved to a local model directory."""
