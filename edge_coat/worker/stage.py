"""The interface between windowing and the model, and a stand-in stage."""

from __future__ import annotations

from typing import Protocol

from edge_coat.messages import EndOfStream, Window, WindowResult


class ModelStage(Protocol):
    """Turns a batch of windows (from any streams) into one result per window, same order.

    ``end_stream`` is told when a stream ended, after its last window (the worker calls it on the model
    thread when the stage has it): a stage that keeps per-stream state (the encoder cache) drops it there.

    Optional, together: ``ahead_chunk_samples(window_samples, hop_samples)`` names the chunk length a stream's
    audio may be handed on in before its windows are due (0: none), and ``encode_ahead(chunks)`` takes
    those ``AudioChunk`` items on the model thread while no window waits (the worker asks only a stage that
    has both; see ``edge_coat.worker.service``).
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
