"""The interface between windowing and the model, and a stand-in stage."""

from __future__ import annotations

from typing import Protocol

from edge_coat.messages import EndOfStream, Window, WindowResult


class ModelStage(Protocol):
    """Turns a batch of windows (from any streams) into one result per window, same order.

    ``end_stream`` is told when a stream ended, after its last window (the worker calls it on the model
    thread when the stage has it): a stage that keeps per-stream state (the encoder cache) drops it there.
    """

    def process(self, windows: list[Window]) -> list[WindowResult]: ...

    def end_stream(self, end: EndOfStream) -> None: ...


class NoopStage:
    """Stand-in model stage: no inference, an empty result per window (tests, benchmarks, demos
    of the streaming half). It reports loudness so the output is not meaningless."""

    name = "noop"

    def process(self, windows: list[Window]) -> list[WindowResult]:
        return [
            WindowResult(window=w, label_probs={}, readings={"loudness_dbfs": w.rms_dbfs}, model_name=self.name)
            for w in windows
        ]

    def end_stream(self, end: EndOfStream) -> None:
        """Nothing kept per stream."""
