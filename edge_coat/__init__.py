"""edge-coat: on-prem streaming audio analytics with Continuous Audio Thinking (CoAT)."""

__version__ = "0.1.0"
