"""Audio experts: the teachers CoAT's thinking block is distilled toward, and their disk cache.

Typical use::

    from edge_coat.experts import get_experts, TeacherCache

    experts = get_experts()                     # the five default experts, shared instances
    cache = TeacherCache("runs/teacher-cache")
    targets = cache.get_all(experts, wave16k)   # {expert name: (frames, D) or (D,) float32}

Each expert says how its output should be learned: ``expert.loss`` in ``LOSS_TYPES``,
``expert.dim``, ``expert.frame_rate`` (None = pooled); ``pool_segments`` maps a time-resolved
output onto K thinking slots.
"""

from edge_coat.experts.base import (
    DEFAULT_EXPERTS,
    LOSS_TYPES,
    Expert,
    ExpertUnavailable,
    LossType,
    available_experts,
    create_expert,
    get_expert,
    get_experts,
    pool_segments,
    register_expert,
)
from edge_coat.experts.cache import CacheStats, TeacherCache

__all__ = [
    "DEFAULT_EXPERTS",
    "LOSS_TYPES",
    "CacheStats",
    "Expert",
    "ExpertUnavailable",
    "LossType",
    "TeacherCache",
    "available_experts",
    "create_expert",
    "get_expert",
    "get_experts",
    "pool_segments",
    "register_expert",
]
