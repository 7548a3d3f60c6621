"""Loading modes: fp32, int8 (CPU dynamic quantization) and nf4 (bitsandbytes 4-bit on CUDA)."""

from __future__ import annotations

import importlib.util
import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

MODES = ("fp32", "int8", "nf4")


def check_mode(mode: str) -> None:
    """Raise a clear error when ``mode`` is unknown or cannot run on this machine."""
    if mode not in MODES:
        raise ValueError(f"unknown quantization {mode!r}; expected one of {MODES}")
    if mode == "nf4":
        missing = [p for p in ("bitsandbytes", "accelerate") if importlib.util.find_spec(p) is None]
        if missing:
            raise RuntimeError(
                f"quantization 'nf4' needs the package(s) {', '.join(missing)}: "
                "install the GPU extra (pip install 'edge-coat[gpu]')"
            )
        if not torch.cuda.is_available():
            raise RuntimeError("quantization 'nf4' needs CUDA, but CUDA is not available; use 'int8' or 'fp32' on CPU")


def nf4_config():
    """The ``BitsAndBytesConfig`` used for nf4 loads (compute in bf16, double quantization)."""
    check_mode("nf4")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def quantize_int8(module: nn.Module) -> nn.Module:
    """Dynamic int8 quantization of every ``nn.Linear`` in ``module`` (CPU inference only).

    ``torch.ao.quantization.quantize_dynamic`` is deprecated in torch 2.13 but was the fastest CPU
    option measured here (FACTS.md); its replacement (torchao) is not installed.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
