# How the 1.5.0 bundle was exported: python docs/coat-tiny-1.5/export.py SRC OUT [VERSION [NOTES]]
# SRC: the readout CLI's output on the 1.4.1 bundle (python -m edge_coat.train.readout docs/coat-tiny-1.4/run
# --model models/coat-tiny --out SRC), plus MODEL_CARD.md and NOTICE.whisper; the manifest's fields are the shipped
# bundle's (the weights and their data are the same). VERSION (default 1.5.0) and NOTES: another readout-only release
# exported the same way (docs/coat-tiny-1.6-candidate).
import argparse
import json
import sys

sys.path.insert(0, '.')
from edge_coat.commands.export import _max_seconds  # noqa: E402
from edge_coat.export.bundle import export_bundle  # noqa: E402
from edge_coat.export.parity import load_real_waves  # noqa: E402

NOTES = ("1.3.1's weights with an answer readout (a logistic regression on the statistics of the audio tower's output) "
         "fitted on the training clips of emotion and events and fused with the LLM's answer")
old = json.load(open('models/coat-tiny/manifest.json'))
src, out = sys.argv[1], sys.argv[2]
version = sys.argv[3] if len(sys.argv) > 3 else '1.5.0'
notes = sys.argv[4] if len(sys.argv) > 4 else NOTES
real = load_real_waves('../shared/data/ravdess', 4, max_seconds=_max_seconds(argparse.Namespace(model=src)))
m = export_bundle(src, out, name=old['name'], version=version, license=old['license'],
                  data_provenance=old['data_provenance'], base_model=old['base_model'], notes=notes,
                  real_waves=real, force=True)
print([(r.component, r.max_abs_diff) for r in m.parity])
