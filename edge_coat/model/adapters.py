"""Adapters over the three base LALM families in transformers.

Each adapter turns one ``*ForConditionalGeneration`` model into the same small surface:

* ``encode_audio(mel, mel_mask) -> (embeds (B, T, D), mask (B, T) bool)``: audio embeddings already
  projected to the LLM width; padded mel frames are masked inside the encoder where the family
  supports it, and the padded output positions are marked False so callers drop them.
* ``embed_tokens(ids (B, L)) -> (B, L, D)``
* ``decode(embeds, attention_mask, positions, cache, ...)``: the LLM decoder on ``inputs_embeds``
  with explicit positions (2-D ``(B, L)``; the adapter expands them to Qwen2.5-Omni's 3-D mrope).
* ``lm_head``, ``layers`` (the decoder layers, for hooks and gradient checks).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from edge_coat.model.config import FAMILIES

log = logging.getLogger(__name__)


def _family_classes(family: str):
    import transformers as tf

    table = {
        "qwen2_audio": (tf.Qwen2AudioConfig, tf.Qwen2AudioForConditionalGeneration),
        "qwen2_5_omni": (tf.Qwen2_5OmniThinkerConfig, tf.Qwen2_5OmniThinkerForConditionalGeneration),
        "audioflamingo3": (tf.AudioFlamingo3Config, tf.AudioFlamingo3ForConditionalGeneration),
    }
    if family not in table:
        raise ValueError(f"unknown model family {family!r}; expected one of {FAMILIES}")
    return table[family]


class FamilyAdapter:
    """Common code; subclasses implement ``encode_audio`` for their encoder."""

    family: str = ""

    def __init__(self, model: nn.Module):
        self.model = model

    # -- structure -------------------------------------------------------------------------------
    @property
    def config(self):
        return self.model.config

    @property
    def audio_config(self):
        return self.model.config.audio_config

    @property
    def text_config(self):
        return self.model.config.get_text_config()

    @property
    def llm(self) -> nn.Module:
        return self.model.model.language_model

    @property
    def layers(self) -> nn.ModuleList:
        return self.llm.layers

    @property
    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def num_layers(self) -> int:
        return int(self.text_config.num_hidden_layers)

    @property
    def audio_dim(self) -> int:
        """Width of ``encode_audio``'s output (the LLM width: embeddings come projected)."""
        return self.hidden_size

    @property
    def supports_tower(self) -> bool:
        """Whether this family exposes the tower's output before the projector (``encode_tower``)."""
        return type(self).encode_tower is not FamilyAdapter.encode_tower

    @property
    def tower_dim(self) -> int:
        """Width of the audio tower's output before the projector (``encode_tower``; Qwen2-Audio's ``d_model``)."""
        return int(self.audio_config.d_model)

    @property
    def n_mels(self) -> int:
        return int(self.audio_config.num_mel_bins)

    @property
    def max_frames(self) -> int:
        """Mel frames the encoder takes: 2 * max_source_positions (3000 = 30 s for the real models)."""
        return 2 * int(self.audio_config.max_source_positions)

    @property
    def vocab_size(self) -> int:
        return int(self.text_config.vocab_size)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    # -- compute ---------------------------------------------------------------------------------
    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)  # (B, L) -> (B, L, D)

    def output_lengths(self, mel_lengths: torch.Tensor) -> torch.Tensor:
        """Valid mel frames per window -> valid audio embeddings per window (conv stride 2, pool 2)."""
        after_conv = (mel_lengths - 1) // 2 + 1
        return (after_conv - 2) // 2 + 1

    def encode_audio(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def positions(self, pos: torch.Tensor) -> torch.Tensor:
        """(B, L) positions -> what this family's decoder takes."""
        return pos

    def decode(
        self,
        embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        pos: torch.Tensor,
        cache=None,
        use_cache: bool = False,
        output_hidden_states: bool = False,
    ):
        """One decoder call. embeds (B, L, D); attention_mask (B, P+L) over cache + new; pos (B, L)."""
        return self.llm(
            inputs_embeds=embeds,
            attention_mask=attention_mask,
            position_ids=self.positions(pos),
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )

    def _project(self, hidden: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B, T, Da) -> (embeds (B, T, D), valid mask (B, T) bool)."""
        embeds = self.project(hidden)  # (B, T, D)
        return embeds, self._valid(mel_mask, embeds.shape[1])

    def _valid(self, mel_mask: torch.Tensor, t: int) -> torch.Tensor:
        """(B, F) mel mask -> (B, T) bool mask of the valid encoder output positions."""
        lengths = self.output_lengths(mel_mask.sum(-1))  # (B,)
        return torch.arange(t, device=mel_mask.device)[None, :] < lengths[:, None]  # (B, T)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Audio-tower output (..., Da) -> LLM-width embeddings (..., D)."""
        return self.model.model.multi_modal_projector(hidden.to(self.dtype))

    def encode_tower(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The audio tower alone (no projector): (hidden (B, T, Da), valid mask (B, T) bool).

        With a frozen pretrained tower, training caches this output per clip and trains the projector
        and everything after it (``edge_coat.train.towercache``)."""
        raise NotImplementedError(f"{self.family}: the tower output is cached for qwen2_audio only")


class Qwen2AudioAdapter(FamilyAdapter):
    family = "qwen2_audio"

    def encode_audio(self, mel, mel_mask):
        hidden, _ = self.encode_tower(mel, mel_mask)
        return self._project(hidden, mel_mask.to(self.device))

    def encode_tower(self, mel, mel_mask):
        tower = self.model.model.audio_tower
        mel = mel.to(self.device, self.dtype)  # (B, n_mels, F)
        mel_mask = mel_mask.to(self.device)
        conv_len = (mel_mask.sum(-1) - 1) // 2 + 1  # (B,) frames after the stride-2 conv
        # Mask the padded frames inside the encoder, as Qwen2AudioModel.forward does.
        enc_mask = self._encoder_mask(conv_len, (mel.shape[-1] - 1) // 2 + 1, mel.dtype)
        hidden = tower(mel, attention_mask=enc_mask).last_hidden_state  # (B, T, Da)
        return hidden, self._valid(mel_mask, hidden.shape[1])

    def _encoder_mask(self, conv_len: torch.Tensor, t_conv: int, dtype: torch.dtype):
        """Each chunk's valid frames after the conv (B,) -> the encoder blocks' bidirectional attention mask."""
        from transformers.masking_utils import create_bidirectional_mask

        conv_mask = (torch.arange(t_conv, device=conv_len.device)[None, :] < conv_len[:, None]).long()  # (B, T')
        return create_bidirectional_mask(
            config=self.model.model.audio_tower.config,
            inputs_embeds=torch.zeros(conv_len.shape[0], t_conv, 1, dtype=dtype, device=conv_len.device),
            attention_mask=conv_mask,
        )

    def top_inputs(self, mel, mel_mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The input of the tower's top block: (hidden (B, T', Da) at the conv rate, frames after the conv (B,),
        valid output positions (B,)). ``tower_top`` of the first two gives ``encode_tower``'s output: a tower whose
        top block trains (LoRA) caches everything below it (``edge_coat.train.towercache.TopInputCache``)."""
        tower = self.model.model.audio_tower
        seen = {}

        def grab(_module, args, kwargs):
            seen["h"] = args[0] if args else kwargs["hidden_states"]
            raise _Stop

        handle = tower.layers[-1].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.encode_tower(mel, mel_mask)
        except _Stop:
            pass
        finally:
            handle.remove()
        mel_mask = mel_mask.to(self.device)
        conv_len = (mel_mask.sum(-1) - 1) // 2 + 1  # (B,)
        return seen["h"], conv_len, self.output_lengths(mel_mask.sum(-1))

    def tower_top(self, hidden: torch.Tensor, conv_len: torch.Tensor) -> torch.Tensor:
        """The top block, the pool and the final norm on ``top_inputs``: (B, T', Da), (B,) -> (B, T, Da), exactly
        as the tower's own forward runs them."""
        tower = self.model.model.audio_tower
        hidden = hidden.to(self.device, self.dtype)
        x = tower.layers[-1](hidden, self._encoder_mask(conv_len.to(self.device), hidden.shape[1], hidden.dtype))
        x = x[0] if isinstance(x, tuple) else x
        x = tower.avg_pooler(x.permute(0, 2, 1)).permute(0, 2, 1)
        return tower.layer_norm(x)


class _Stop(Exception):
    """Ends a tower forward pass at the top block (``Qwen2AudioAdapter.top_inputs``)."""


class AudioFlamingo3Adapter(FamilyAdapter):
    family = "audioflamingo3"

    def encode_audio(self, mel, mel_mask):
        mel = mel.to(self.device, self.dtype)  # (B, n_mels, F)
        mel_mask = mel_mask.to(self.device)
        hidden = self.model.model.audio_tower(mel, input_features_mask=mel_mask).last_hidden_state  # (B, T, Da)
        return self._project(hidden, mel_mask)


class Qwen2_5OmniAdapter(FamilyAdapter):
    family = "qwen2_5_omni"

    def encode_audio(self, mel, mel_mask):
        mel = mel.to(self.device, self.dtype)  # (B, n_mels, F)
        mel_mask = mel_mask.to(self.device)
        # The thinker drops padded frames before its encoder and returns the valid ones flattened.
        flat = self.model.model.get_audio_features(mel, feature_attention_mask=mel_mask).last_hidden_state  # (sum T_i, D)
        lengths = self.output_lengths(mel_mask.sum(-1))  # (B,)
        t_max = int(self.output_lengths(torch.tensor(mel.shape[-1])))
        embeds = flat.new_zeros(mel.shape[0], t_max, flat.shape[-1])  # (B, T, D)
        mask = torch.arange(t_max, device=mel.device)[None, :] < lengths[:, None]  # (B, T)
        embeds[mask] = flat
        return embeds, mask

    def positions(self, pos):
        # Text/audio-only sequences: all three mrope axes (temporal, height, width) carry the same index.
        return pos[None].expand(3, -1, -1)  # (3, B, L)


ADAPTERS: dict[str, type[FamilyAdapter]] = {
    a.family: a for a in (Qwen2AudioAdapter, Qwen2_5OmniAdapter, AudioFlamingo3Adapter)
}


def build_adapter(family: str, base_config) -> FamilyAdapter:
    """A randomly initialised base model from a config object (tests, tiny models)."""
    _, model_cls = _family_classes(family)
    model = model_cls(base_config)
    model.eval()
    return ADAPTERS[family](model)


def load_adapter(family: str, directory: str | Path, quantization_config=None, dtype=None) -> FamilyAdapter:
    """A base model from a local directory (config.json + safetensors). Never touches the network."""
    _, model_cls = _family_classes(family)
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"{directory} has no config.json; expected a local {family} checkpoint directory")
    kwargs = {"local_files_only": True}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = "auto"
    if dtype is not None:
        kwargs["dtype"] = dtype
    log.info("loading %s base model from %s", family, directory)
    model = model_cls.from_pretrained(str(directory), **kwargs)
    model.eval()
    return ADAPTERS[family](model)


def family_of_config(base_config) -> str:
    """The family name of a transformers config object."""
    for family in FAMILIES:
        config_cls, _ = _family_classes(family)
        if isinstance(base_config, config_cls):
            return family
    raise ValueError(f"unsupported base config {type(base_config).__name__}; expected one of {FAMILIES}")
