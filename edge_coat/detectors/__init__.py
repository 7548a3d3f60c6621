"""Detectors: turn WindowResults into EventRecords (anomaly and emotion episodes with evidence).

The worker calls::

    detectors = DetectorSet(DetectorsConfig(...))
    records = detectors.process(result)        # WindowResult -> list[EventRecord]
    records += detectors.close_stream(stream_id, ts)   # when a stream ends

and serves enrollment through the same object (it implements the event service's StreamControl).
"""

from edge_coat.detectors.anomaly import AnomalyDetector
from edge_coat.detectors.config import AnomalyConfig, DetectorsConfig, EmotionConfig, EpisodeConfig
from edge_coat.detectors.emotion import EmotionDetector
from edge_coat.detectors.set import DetectorSet

__all__ = ["AnomalyConfig", "AnomalyDetector", "DetectorSet", "DetectorsConfig", "EmotionConfig",
           "EmotionDetector", "EpisodeConfig"]
