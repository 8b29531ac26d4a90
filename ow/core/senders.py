"""Bound events: the events of a run that count only from the identity holding its claim,
and how their subject carries that identity (a part of the subject layout of `subjects.py`,
apart so that the codec can read it without the event catalogue).

A bound event published under a worker's or a run's credential (`ow.core.credentials`) is
stored under `ow.ev.<org>.job.<job_id>.<EventType>.<sender>`; the server lets a credential
publish it only under its own worker id (`ow.core.permissions`), so the last token is who
sent it, whatever its payload says.

Imports: stdlib only.
"""

from __future__ import annotations

__all__ = ["BOUND_EVENTS", "sender_of_subject"]

BOUND_EVENTS = frozenset({"RunStarted", "RunFinished", "JobRequeued", "ArtifactUploaded",
                          "CheckpointSaved", "JobCompleted", "JobFailed", "JobCanceled"})


def sender_of_subject(subject: str, kind: str) -> str:
    """The identity a bound event of type `kind` was published under, from its subject;
    '' when unbound (static tokens, the operator, every event older than credentials)."""
    parts = subject.split(".")
    if len(parts) == 7 and parts[3] == "job" and parts[5] == kind and kind in BOUND_EVENTS:
        return parts[6]
    return ""
