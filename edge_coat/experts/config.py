"""Configuration of the experts (the ``experts:`` section of a training or site config)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge_coat.experts.base import DEFAULT_EXPERTS


class ExpertsConfig(BaseModel):
    """Which experts teach the thinking block, their loss weights, and where targets are cached."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(
        default_factory=lambda: list(DEFAULT_EXPERTS),
        min_length=0, max_length=32,
        description="registered expert names, in head order (see edge_coat.experts.available_experts())",
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="expert name -> weight of its distillation loss (missing: 1.0); each in [0, 1000]",
    )
    cache_dir: Path | None = Field(
        default=None, description="teacher-cache folder (targets per clip and expert); None disables caching"
    )

    @field_validator("names")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        from edge_coat.experts.base import available_experts

        known = available_experts()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown expert(s) {unknown}; registered: {known}")
        if len(set(names)) != len(names):
            raise ValueError(f"expert names must be unique, got {names}")
        return names

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in weights.items() if not 0.0 <= v <= 1000.0}
        if bad:
            raise ValueError(f"expert weights must be in [0, 1000], got {bad}")
        return weights

    @model_validator(mode="after")
    def _weights_of_enabled(self) -> "ExpertsConfig":
        stray = sorted(set(self.weights) - set(self.names))
        if stray:
            raise ValueError(f"weights given for expert(s) {stray} not in names {self.names}: add them to names or drop the weights")
        return self

    def weight(self, name: str) -> float:
        return self.weights.get(name, 1.0)
