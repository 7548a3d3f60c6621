"""The exported parts of a model in onnxruntime, behind the torch parts' call signatures.

``OnnxThinkingBlock(path, config)`` is an ``nn.Module`` without parameters, so a ``CoatModel`` can
take it in place of its torch ``ThinkingBlock`` (``model.thinking = OnnxThinkingBlock(...)``):
``forward(audio_embeds (B, T, Da), audio_mask (B, T) bool) -> (B, K, D)`` float32 torch tensor on the
input's device. numpy arrays are accepted too.

``OnnxAudioEncoder(path, adapter, config)`` is ``model.encode_mel``'s runtime for ``encoder.onnx``
(audio encoder + projector, Qwen2-Audio family; ``edge_coat.export.encoder`` writes it):
``(mel (B, n_mels, F), mel_mask (B, F)) -> (embeds (B, T, D) float32, mask (B, T) bool)``;
``encode_with_tower`` adds the tower's output before the projector (B, T, Da), where the graph has it
(``has_tower``: exported since coat-tiny 1.5).

The graph file names and input/output names below are the bundle format: ``edge_coat.export`` writes
graphs with them, this module reads them.

One ``InferenceSession`` per (file, providers, options) per process, created with explicit
``SessionOptions`` and providers and warmed up once. onnxruntime is imported lazily: a machine
that runs the block in torch never needs it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edge_coat.model.config import FAMILY_SPECS, EncoderRuntimeConfig, ThinkingRuntimeConfig

log = logging.getLogger(__name__)

THINKING_ONNX = "thinking.onnx"
THINKING_FRAMES_ONNX = "thinking_frames.onnx"
THINKING_WINDOW_ONNX = "thinking_window.onnx"
THINKING_WEIGHTS = "thinking.weights"
#: Name suffixes of a graph weight read from a safetensors file (``link_to_safetensors``): the stored tensor is
#: ``<name>.stored``; when it is kept transposed, its float32 cast is ``<name>.float`` before the ``Transpose``.
STORED_SUFFIX, CAST_SUFFIX = ".stored", ".float"
ENCODER_ONNX = "encoder.onnx"
INPUT_EMBEDS = "audio_embeds"
INPUT_MASK = "audio_mask"
OUTPUT = "thinking"
INPUT_FRAMES = "thinking_frames"
OUTPUT_FRAMES = "thinking_frames"
INPUT_MEL = "mel"
INPUT_MEL_MASK = "mel_mask"
OUTPUT_EMBEDS = "audio_embeds"
#: the encoder graph's second output (bundles from coat-tiny 1.5): the tower's output before the projector, which a
#: readout with ``readout_input`` 'tower' reads
OUTPUT_TOWER = "audio_tower"

_SESSIONS: dict[tuple, object] = {}
_SESSIONS_LOCK = threading.Lock()
_OPT_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
               "all": "ORT_ENABLE_ALL"}


def import_onnxruntime():
    """``onnxruntime``, or a RuntimeError that says how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise RuntimeError(
            "the ONNX thinking block needs onnxruntime, which is not installed: "
            "pip install 'edge-coat[cpu]' (CPU) or 'edge-coat[gpu]' (CUDA; never both), "
            "or set model.thinking.backend: torch"
        ) from exc
    return onnxruntime


def resolve_providers(config: ThinkingRuntimeConfig) -> list:
    """Explicit provider list for ``config.provider`` given what this onnxruntime build offers."""
    ort = import_onnxruntime()
    available = ort.get_available_providers()
    if config.provider == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return [("CUDAExecutionProvider", {"device_id": config.device_id}), "CPUExecutionProvider"]
    if config.provider == "cuda":
        raise RuntimeError(
            f"thinking provider 'cuda' requested but this onnxruntime offers only {available}: "
            "install onnxruntime-gpu (and not onnxruntime) on a CUDA machine, or set provider: cpu"
        )
    return ["CPUExecutionProvider"]


def get_session(path: str | Path, config: ThinkingRuntimeConfig):
    """The process-wide session for ``path`` under ``config`` (created and cached on first use)."""
    ort = import_onnxruntime()
    path = Path(path).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"ONNX file {path} does not exist")
    st = path.stat()
    providers = resolve_providers(config)
    key = (str(path), st.st_size, st.st_mtime_ns, repr(providers), config.intra_op_threads,
           config.inter_op_threads, config.graph_optimization)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is not None:
            return session
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = config.intra_op_threads
        opts.inter_op_num_threads = config.inter_op_threads
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _OPT_LEVELS[config.graph_optimization])
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        active = session.get_providers()
        if config.provider == "cuda" and active[0] != "CUDAExecutionProvider":
            # onnxruntime-gpu without usable CUDA libraries silently falls back to the CPU.
            raise RuntimeError(f"thinking provider 'cuda' requested but onnxruntime could only start {active}")
        if config.provider == "auto" and len(providers) > 1 and active[0] != "CUDAExecutionProvider":
            log.warning("onnxruntime offers CUDA but the session fell back to %s", active)
        log.info("onnxruntime %s session for %s on %s (intra %d, inter %d threads, optimisation %s)",
                 ort.__version__, path.name, active[0], config.intra_op_threads, config.inter_op_threads,
                 config.graph_optimization)
        _SESSIONS[key] = session
        return session


def open_checked_session(path: Path, config, input_names: tuple[str, ...], output_name: str):
    """(session, inputs by name, outputs by name) for an exported graph, after checking that it has
    exactly ``input_names`` and an ``output_name`` output (a clear error names what it has instead)."""
    session = get_session(path, config)
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if set(inputs) != set(input_names) or output_name not in outputs:
        raise ValueError(
            f"{path}: expected inputs ({', '.join(input_names)}) and output {output_name}, "
            f"got inputs {sorted(inputs)} and outputs {sorted(outputs)}; export it with edge-coat export"
        )
    return session, inputs, outputs


class OnnxThinkingBlock(nn.Module):
    """Drop-in for ``ThinkingBlock`` running an exported ``thinking.onnx`` in onnxruntime; with ``split``
    and the bundle's ``thinking_frames.onnx`` + ``thinking_window.onnx`` beside it, also its two parts
    (``frame_features``, ``from_frames``; ``can_split`` says whether they are there, ``split_note`` why not)."""

    def __init__(self, path: str | Path, config: ThinkingRuntimeConfig | None = None, *, split: bool = True):
        super().__init__()
        self.config = config or ThinkingRuntimeConfig()
        self.path = Path(path)
        self._session, inputs, outputs = open_checked_session(
            self.path, self.config, (INPUT_EMBEDS, INPUT_MASK), OUTPUT)
        self.audio_dim = int(inputs[INPUT_EMBEDS].shape[2])
        self.num_queries = int(outputs[OUTPUT].shape[1])
        self.out_dim = int(outputs[OUTPUT].shape[2])
        self.provider = self._session.get_providers()[0]
        self._frames_session = self._window_session = None
        self.frame_dim = 0
        self.split_note = "per-frame/per-window parts not opened (split=False): whole windows only"
        if split:
            self._open_parts()
        if self.config.warmup:
            self(np.zeros((1, 4, self.audio_dim), np.float32), np.ones((1, 4), bool))
            if self.can_split:
                self.from_frames(self.frame_features(np.zeros((1, 4, self.audio_dim), np.float32)), np.ones((1, 4), bool))
        log.info("thinking block: onnxruntime on %s (K=%d, %d -> %d); %s", self.provider, self.num_queries,
                 self.audio_dim, self.out_dim, self.split_note)

    def _open_parts(self) -> None:
        """The per-frame and per-window graphs beside ``thinking.onnx`` when the bundle has both (bundles
        exported before them have neither: the block then runs whole windows only)."""
        frames_path = self.path.with_name(THINKING_FRAMES_ONNX)
        window_path = self.path.with_name(THINKING_WINDOW_ONNX)
        if not (frames_path.is_file() and window_path.is_file()):
            self.split_note = (f"no {THINKING_FRAMES_ONNX} + {THINKING_WINDOW_ONNX} beside {self.path.name} (a bundle "
                               "exported before them): whole windows only, no per-frame thinking cache")
            return
        self._frames_session, f_in, f_out = open_checked_session(frames_path, self.config, (INPUT_EMBEDS,),
                                                                 OUTPUT_FRAMES)
        self._window_session, w_in, w_out = open_checked_session(window_path, self.config, (INPUT_FRAMES, INPUT_MASK),
                                                                 OUTPUT)
        self.frame_dim = int(f_out[OUTPUT_FRAMES].shape[2])
        dims = (int(f_in[INPUT_EMBEDS].shape[2]), int(w_in[INPUT_FRAMES].shape[2]), int(w_out[OUTPUT].shape[1]),
                int(w_out[OUTPUT].shape[2]))
        if dims != (self.audio_dim, self.frame_dim, self.num_queries, self.out_dim):
            raise ValueError(
                f"{frames_path.name} + {window_path.name}: (Da, F, K, D) = {dims} do not fit {self.path.name}'s "
                f"(Da, K, D) = {(self.audio_dim, self.num_queries, self.out_dim)} and F = {self.frame_dim}; "
                "re-export the bundle with edge-coat export")
        self.split_note = (f"per-frame part ({frames_path.name}, F={self.frame_dim}) and per-window part "
                           f"({window_path.name}) available")

    @property
    def can_split(self) -> bool:
        """Whether ``frame_features`` / ``from_frames`` can run (the bundle has both part graphs)."""
        return self._frames_session is not None

    def frame_features(self, audio_embeds) -> torch.Tensor:
        """The per-frame part (``ThinkingBlock.frame_features``): audio_embeds (B, T, Da) -> (B, T, F) float32
        on the input's device (through host memory)."""
        if not self.can_split:
            raise RuntimeError(f"{self.split_note}; use forward(audio_embeds, audio_mask)")
        if audio_embeds.ndim != 3 or audio_embeds.shape[2] != self.audio_dim:
            raise ValueError(f"audio_embeds: expected shape (B, T, {self.audio_dim}), got {tuple(audio_embeds.shape)}")
        x, device = _host(audio_embeds, np.float32)
        out = self._frames_session.run([OUTPUT_FRAMES], {INPUT_EMBEDS: x})[0]  # (B, T, F)
        return torch.from_numpy(out).to(device)

    def from_frames(self, frames, audio_mask) -> torch.Tensor:
        """The per-window part (``ThinkingBlock.from_frames``): frames (B, T, F), audio_mask (B, T) bool ->
        (B, K, D) float32 on the input's device (through host memory)."""
        if not self.can_split:
            raise RuntimeError(f"{self.split_note}; use forward(audio_embeds, audio_mask)")
        if frames.ndim != 3 or frames.shape[2] != self.frame_dim:
            raise ValueError(f"frames: expected shape (B, T, {self.frame_dim}), got {tuple(frames.shape)}")
        if tuple(audio_mask.shape) != tuple(frames.shape[:2]):
            raise ValueError(f"audio_mask: expected shape {tuple(frames.shape[:2])} (B, T), got {tuple(audio_mask.shape)}")
        x, device = _host(frames, np.float32)
        m, _ = _host(audio_mask, np.bool_)
        empty = np.flatnonzero(~m.any(axis=1))
        if empty.size:
            raise ValueError(f"audio_mask: windows {empty.tolist()} have no valid frame; expected at least one each")
        out = self._window_session.run([OUTPUT], {INPUT_FRAMES: x, INPUT_MASK: m})[0]  # (B, K, D)
        return torch.from_numpy(out).to(device)

    @property
    def dtype(self) -> torch.dtype:
        """The exported graph computes in fp32 (what ``CoatModel.think`` casts the audio to)."""
        return torch.float32

    def extra_repr(self) -> str:
        return f"path={self.path.name}, provider={self.provider}, K={self.num_queries}"

    def _check(self, shape: tuple, mask_shape: tuple) -> None:
        if len(shape) != 3 or shape[2] != self.audio_dim or shape[0] < 1 or shape[1] < 1:
            raise ValueError(f"audio_embeds: expected shape (B, T, {self.audio_dim}), got {tuple(shape)}")
        if tuple(mask_shape) != tuple(shape[:2]):
            raise ValueError(f"audio_mask: expected shape {tuple(shape[:2])} (B, T), got {tuple(mask_shape)}")

    def forward(self, audio_embeds, audio_mask) -> torch.Tensor:
        """audio_embeds (B, T, Da), audio_mask (B, T) bool (True = valid) -> (B, K, D) float32."""
        self._check(tuple(audio_embeds.shape), tuple(audio_mask.shape))
        if isinstance(audio_embeds, torch.Tensor):
            device = audio_embeds.device
            if device.type == "cuda" and self.provider == "CUDAExecutionProvider":
                return self._run_cuda(audio_embeds, torch.as_tensor(audio_mask, device=device))
            x = audio_embeds.detach().to("cpu", torch.float32).numpy()
        else:
            device = torch.device("cpu")
            x = np.asarray(audio_embeds, dtype=np.float32)
        m = audio_mask.detach().cpu().numpy() if isinstance(audio_mask, torch.Tensor) else np.asarray(audio_mask)
        m = m.astype(bool, copy=False)
        empty = np.flatnonzero(~m.any(axis=1))
        if empty.size:
            raise ValueError(f"audio_mask: windows {empty.tolist()} have no valid frame; expected at least one each")
        out = self._session.run([OUTPUT], {INPUT_EMBEDS: np.ascontiguousarray(x), INPUT_MASK: np.ascontiguousarray(m)})
        return torch.from_numpy(out[0]).to(device)  # (B, K, D)

    def _run_cuda(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Zero-copy path: bind torch CUDA memory to the session's inputs and output."""
        x = x.detach().to(torch.float32).contiguous()  # (B, T, Da)
        m = m.detach().to(torch.bool).contiguous()  # (B, T)
        if not bool(m.any(dim=1).all()):
            raise ValueError("audio_mask: some windows have no valid frame; expected at least one each")
        out = torch.empty((x.shape[0], self.num_queries, self.out_dim), dtype=torch.float32, device=x.device)
        idx = x.device.index or 0
        binding = self._session.io_binding()
        binding.bind_input(INPUT_EMBEDS, "cuda", idx, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_input(INPUT_MASK, "cuda", idx, np.bool_, tuple(m.shape), m.data_ptr())
        binding.bind_output(OUTPUT, "cuda", idx, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.synchronize(x.device)  # onnxruntime runs on its own stream
        self._session.run_with_iobinding(binding)
        return out  # (B, K, D)


def _host(x, dtype) -> tuple[np.ndarray, torch.device]:
    """A C-contiguous numpy array of ``x`` (torch tensor on any device, or array-like) in ``dtype``, and the
    device to return results to."""
    if isinstance(x, torch.Tensor):
        device = x.device
        x = x.detach().cpu().numpy()
    else:
        device = torch.device("cpu")
    return np.ascontiguousarray(x, dtype=dtype), device


def session_count() -> int:
    """How many onnxruntime sessions this process holds (tests check sessions are shared)."""
    return len(_SESSIONS)


def supports_onnx_encoder(family: str) -> bool:
    """Whether bundles of ``family`` carry the audio encoder as ``encoder.onnx`` (``FAMILY_SPECS``)."""
    spec = FAMILY_SPECS.get(family)
    return spec is not None and spec.onnx_encoder


def require_onnx_encoder(family: str) -> None:
    if not supports_onnx_encoder(family):
        names = [f for f, spec in FAMILY_SPECS.items() if spec.onnx_encoder]
        raise ValueError(f"the ONNX audio encoder is exported for {names} only, got family {family!r}")


class OnnxAudioEncoder:
    """``model.encode_mel``'s runtime in onnxruntime: ``(mel (B, n_mels, F), mel_mask (B, F)) ->
    (embeds (B, T, D) float32 on the mel's device, mask (B, T) bool)``.

    A plain object, not a module: it has no weights for ``state_dict`` and sits in
    ``CoatModel.audio_encoder``. Sessions are shared per process (``runtime.get_session``).
    """

    def __init__(self, path: str | Path, adapter, config: EncoderRuntimeConfig | None = None):
        self.config = config or EncoderRuntimeConfig()
        self.path = Path(path)
        self.adapter = adapter
        self.quantization = self.config.quantization
        graph = int8_copy(self.path) if self.quantization == "int8" else self.path
        self._session, inputs, outputs = open_checked_session(
            graph, self.config, (INPUT_MEL, INPUT_MEL_MASK), OUTPUT_EMBEDS)
        self.n_mels = int(inputs[INPUT_MEL].shape[1])
        self.frames = int(inputs[INPUT_MEL].shape[2])
        self.out_dim = int(outputs[OUTPUT_EMBEDS].shape[2])
        #: whether the graph also outputs the tower before the projector (``encode_with_tower``)
        self.has_tower = OUTPUT_TOWER in outputs
        expected = (adapter.n_mels, adapter.max_frames, adapter.hidden_size)
        if (self.n_mels, self.frames, self.out_dim) != expected:
            raise ValueError(
                f"{self.path}: graph has (n_mels, frames, D) = {(self.n_mels, self.frames, self.out_dim)} but the "
                f"model's encoder is {expected}; re-export it from this model"
            )
        self.provider = self._session.get_providers()[0]
        if self.config.warmup:
            self(torch.zeros(1, self.n_mels, self.frames), torch.ones(1, self.frames, dtype=torch.long))
        log.info("audio encoder: onnxruntime on %s (%d mel bins x %d frames -> %d)", self.provider, self.n_mels,
                 self.frames, self.out_dim)

    def __call__(self, mel: torch.Tensor, mel_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        (embeds,), mask = self._run(mel, mel_mask, (OUTPUT_EMBEDS,))
        return embeds, mask

    def encode_with_tower(self, mel: torch.Tensor, mel_mask: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(embeds (B, T, D), mask (B, T) bool, tower (B, T, Da)) from one run of the graph."""
        if not self.has_tower:
            raise ValueError(f"{self.path} has no {OUTPUT_TOWER} output (exported before coat-tiny 1.5), which this "
                             "model's answer readout reads: re-export the bundle with edge-coat export")
        (embeds, tower), mask = self._run(mel, mel_mask, (OUTPUT_EMBEDS, OUTPUT_TOWER))
        return embeds, mask, tower

    def _run(self, mel: torch.Tensor, mel_mask: torch.Tensor, names: tuple[str, ...]
             ) -> tuple[list[torch.Tensor], torch.Tensor]:
        device = mel.device
        if mel.ndim != 3 or tuple(mel.shape[1:]) != (self.n_mels, self.frames):
            raise ValueError(f"mel: expected shape (B, {self.n_mels}, {self.frames}), got {tuple(mel.shape)}")
        if tuple(mel_mask.shape) != (mel.shape[0], self.frames):
            raise ValueError(f"mel_mask: expected shape ({mel.shape[0]}, {self.frames}), got {tuple(mel_mask.shape)}")
        x = np.ascontiguousarray(mel.detach().to("cpu", torch.float32).numpy())  # (B, n_mels, F)
        m = np.ascontiguousarray(mel_mask.detach().to("cpu", torch.int64).numpy())  # (B, F)
        outs = [torch.from_numpy(o) for o in self._session.run(list(names), {INPUT_MEL: x, INPUT_MEL_MASK: m})]
        lengths = self.adapter.output_lengths(torch.from_numpy(m).sum(-1))  # (B,)
        mask = torch.arange(outs[0].shape[1])[None, :] < lengths[:, None]  # (B, T)
        return [o.to(device) for o in outs], mask.to(device)


def save_materialized(path: Path, out: Path) -> Path:
    """Save the graph at ``path`` self-contained to ``out``: its weights read from the folder's files, and each
    ``Cast``/``Transpose`` of a stored weight (``edge_coat.export.onnx_export.link_to_safetensors``) computed
    into a plain float32 initializer again, so that tools that work on initializers (onnxruntime's
    ``quantize_dynamic``) see the weights. The same numbers onnxruntime folds at session start."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))  # external data read from path's folder
    graph = model.graph
    values = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        src = values.get(node.input[0]) if node.op_type in ("Cast", "Transpose") and len(node.input) == 1 else None
        if src is None or not src.name.endswith((STORED_SUFFIX, CAST_SUFFIX)):
            kept.append(node)
            continue
        a = numpy_helper.to_array(src)
        if node.op_type == "Cast":
            a = a.astype(onnx.helper.tensor_dtype_to_np_dtype(next(x.i for x in node.attribute if x.name == "to")))
        else:
            a = np.transpose(a, next(list(x.ints) for x in node.attribute if x.name == "perm"))
        values[node.output[0]] = numpy_helper.from_array(np.ascontiguousarray(a), node.output[0])
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    inits = [t for name, t in values.items() if name in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    onnx.save(model, str(out))
    return out


def int8_copy(path: Path) -> Path:
    """A dynamically int8-quantized copy of the graph at ``path`` (onnxruntime ``quantize_dynamic``, int8
    weights, activations quantized per call), written once per graph version into the temp folder: a
    verified bundle is never modified."""
    import hashlib
    import tempfile

    ort = import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    st = path.resolve().stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{ort.__version__}".encode()).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / "edge-coat-int8" / f"{path.stem}-{key}.int8.onnx"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{threading.get_ident()}.tmp")
        src = out.with_suffix(f".{threading.get_ident()}.src.onnx")
        try:
            save_materialized(path, src)  # the quantizer only quantizes weights that are initializers
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
        finally:
            src.unlink(missing_ok=True)
        tmp.replace(out)  # atomic: a concurrent loader sees the whole file or none
        log.info("%s: int8 copy written to %s", path.name, out)
    return out


def attach_onnx_encoder(model, path: str | Path, runtime: EncoderRuntimeConfig | None = None) -> OnnxAudioEncoder:
    """Run ``model``'s audio encoder from the graph at ``path`` (``model.audio_encoder``); returns it."""
    require_onnx_encoder(model.config.family)
    encoder = OnnxAudioEncoder(path, model.adapter, runtime)
    model.audio_encoder = encoder
    return encoder


def describe_encoder(model) -> str:
    """Where the audio encoder runs, for logs and status ("onnxruntime CPU", "torch cpu")."""
    enc = getattr(model, "audio_encoder", None)
    if isinstance(enc, OnnxAudioEncoder):
        where = f"onnxruntime {enc.provider.removesuffix('ExecutionProvider')}"
        return where + (" int8" if enc.quantization == "int8" else "")
    return f"torch {model.device}" + (" int8" if getattr(model, "encoder_quantization", "fp32") == "int8" else "")
