"""The governance store of judgements and feedback (placeholder until the Governance issue lands)."""

from __future__ import annotations


class NullRecorder:
    """Records nothing."""

    def record(self, request, result, now) -> None:
        pass

    def close(self) -> None:
        pass


def create_recorder(settings: dict):
    return NullRecorder()
