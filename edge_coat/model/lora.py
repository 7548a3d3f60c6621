"""LoRA adapters kept beside the CoAT weights, so a site's base checkpoint stays unmodified.

Format (peft's own files): ``lora/adapter_config.json`` (a ``LoraConfig``) and
``lora/adapter_model.safetensors`` (``get_peft_model_state_dict`` of the LLM). The adapters sit on
the base model's decoder (``model.adapter.llm``), the module ``edge-coat train --lora`` injects into.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

LORA_DIR = "lora"
LORA_WEIGHTS = "adapter_model.safetensors"


def save_lora(model, directory: str | Path) -> Path:
    """Write the LoRA adapters injected in ``model.adapter.llm`` to ``directory/lora``."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    llm = model.adapter.llm
    config = getattr(llm, "peft_config", {}).get("default")
    if config is None:
        raise ValueError("the model has no LoRA adapters to save (inject them with peft first)")
    out = Path(directory) / LORA_DIR
    out.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(str(out))
    state = {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(llm).items()}
    save_file(state, str(out / LORA_WEIGHTS))
    return out


def check_lora_mode(quantization: str, directory: str | Path) -> None:
    """LoRA needs the original linears: refuse int8 (dynamic int8 replaces them) before any loading."""
    if quantization == "int8":
        raise ValueError(
            f"{Path(directory) / LORA_DIR}: LoRA adapters attach to fp32 or nf4 loads, not int8 (dynamic int8 "
            "replaces the linears); load fp32, or merge the adapters into the weights before quantizing"
        )


def attach_lora(model, directory: str | Path) -> int:
    """Inject and load the adapters saved in ``directory/lora``; returns how many tensors were loaded."""
    from peft import LoraConfig, inject_adapter_in_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(directory) / LORA_DIR
    check_lora_mode(model.quantization, directory)
    config = LoraConfig.from_pretrained(str(path))
    llm = model.adapter.llm
    inject_adapter_in_model(config, llm)
    state = load_file(str(path / LORA_WEIGHTS), device=str(model.device))
    result = set_peft_model_state_dict(llm, state)
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    missing = [k for k in (getattr(result, "missing_keys", []) or []) if "lora_" in k]
    if unexpected or missing:
        raise ValueError(f"{path}: LoRA weights do not fit this base model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    llm.eval()
    log.info("attached LoRA adapters from %s (r=%s, %d tensors)", path, config.r, len(state))
    return len(state)
