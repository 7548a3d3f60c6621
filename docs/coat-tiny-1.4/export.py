# How the 1.4.0 bundle was exported from /tmp/src14 (the readout CLI output plus MODEL_CARD.md and NOTICE.whisper)
# with the 1.3.1 manifest's fields: python docs/coat-tiny-1.4/export.py /tmp/src14 OUT <1.3.1 manifest.json>
# 1.4.1 (the same files, a new card): python docs/coat-tiny-1.4/export.py SRC OUT models/coat-tiny/manifest.json 1.4.1
# where SRC is a copy of the 1.4.0 bundle's model files, MODEL_CARD.md and NOTICE.whisper (no ONNX, no manifest)
import json, sys, argparse
sys.path.insert(0, '.')
from edge_coat.export.bundle import export_bundle
from edge_coat.export.parity import load_real_waves
from edge_coat.commands.export import _max_seconds
old = json.load(open('models/coat-tiny/manifest.json')) if len(sys.argv) < 4 else json.load(open(sys.argv[3]))
src, out = sys.argv[1], sys.argv[2]
real = load_real_waves('../shared/data/ravdess', 4, max_seconds=_max_seconds(argparse.Namespace(model=src)))
m = export_bundle(src, out, name=old['name'], version=sys.argv[4] if len(sys.argv) > 4 else '1.4.0', license=old['license'],
                  data_provenance=old['data_provenance'], base_model=old['base_model'],
                  notes="1.3.1's weights with an answer readout (a logistic regression on the window's audio statistics) "
                        "fitted on the training clips of emotion and events and fused with the LLM's answer",
                  real_waves=real, force=True)
print([(r.component, r.max_abs_diff) for r in m.parity])
