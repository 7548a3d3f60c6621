"""Detectors: turn WindowResults into EventRecords (episodes with evidence) and typed stream statuses.

The worker calls::

    detectors = DetectorSet(DetectorsConfig(...))      # one detector per config entry, via the registry
    records = detectors.process(result)                # WindowResult -> list[EventRecord]
    records += detectors.end_stream(EndOfStream(...))  # the stream's last window went through

and serves statuses (`messages.StreamStatus`) and enrollment through the same object (it implements
the event service's StreamControl). Detector types are plugins (`edge_coat.detectors.registry`):
anomaly and emotion are the first two; a new one is one module plus its ``detectors:`` config entry.
"""

from edge_coat.detectors.anomaly import AnomalyDetector
from edge_coat.detectors.config import AnomalyConfig, DetectorConfig, DetectorsConfig, EmotionConfig, EpisodeConfig
from edge_coat.detectors.emotion import EmotionDetector
from edge_coat.detectors.registry import Detector, Enrolling, Resuming, detector_types, register
from edge_coat.detectors.set import DetectorSet

__all__ = ["AnomalyConfig", "AnomalyDetector", "Detector", "DetectorConfig", "DetectorSet", "DetectorsConfig",
           "EmotionConfig", "EmotionDetector", "Enrolling", "EpisodeConfig", "Resuming", "detector_types", "register"]
