"""Build the desk readout's CoAT folder (README.md section 5) from a whole bundle exported with it.

    python docs/coat-tiny-corpus-norm/make_desk.py BUNDLE DEST CARD

BUNDLE: ``docs/coat-tiny-1.5/export.py``'s output for the readout CLI's model (``--relative emotion --baseline desk``
on the card run and coat-tiny 1.5); DEST: the folder to write (models/coat-tiny-desk); CARD: its README (may be
DEST/README.md itself: it is read first). DEST gets the
CoAT part of BUNDLE (``coat.safetensors``: thinking block, heads and the readout; ``coat_config.json``; the thinking
graphs and their parity records) and a manifest with role "coat", so a site loads it beside coat-tiny's own folder
(``model.coat_path``): the base (tower, projector, LLM) is coat-tiny's, byte for byte."""
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edge_coat.model.manifest import build_manifest, read_manifest, verify, write_manifest  # noqa: E402

FILES = ("coat.safetensors", "coat_config.json", "thinking.onnx", "thinking.weights", "thinking_frames.onnx",
         "thinking_window.onnx", "NOTICE.whisper")


def main():
    bundle, dest, card = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    src = read_manifest(bundle)
    verify(bundle)
    card_text = card.read_text()
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in FILES:
        shutil.copy2(bundle / name, dest / name)
    (dest / "README.md").write_text(card_text)
    parity = [p for p in src.parity if p.file in FILES]
    m = build_manifest(dest, name="coat-tiny-desk", version=src.version, role="coat", family=src.family,
                       base_model="coat-tiny 1.5.0 (models/coat-tiny: its tower, projector and LLM)",
                       license=src.license, data_provenance=src.data_provenance, quantization=src.quantization,
                       parity=parity, notes=src.notes)
    write_manifest(dest, m)
    verify(dest)
    print(f"{dest}: {len(m.files)} files, {sum(f.size for f in m.files) / 1e6:.1f} MB, parity "
          f"{[(p.component, p.max_abs_diff) for p in parity]}")


if __name__ == "__main__":
    main()
