# How a readout-only release of coat-tiny is exported (1.6.0): python docs/coat-tiny-1.6-candidate/export.py SRC OUT VERSION
# SRC: the readout CLI's output on the shipped bundle (python -m edge_coat.train.readout docs/coat-tiny-1.4/run
# --model models/coat-tiny --out SRC ...), plus MODEL_CARD.md and NOTICE.whisper. The license, data provenance and
# base model are the shipped manifest's (the weights and their data are the same); 1.5.0 was exported the same way
# by docs/coat-tiny-1.5/export.py.
import argparse
import json
import sys

sys.path.insert(0, '.')
from edge_coat.commands.export import _max_seconds  # noqa: E402
from edge_coat.export.bundle import export_bundle  # noqa: E402
from edge_coat.export.parity import load_real_waves  # noqa: E402

NOTES = ("1.3.1's weights with an answer readout (a logistic regression on the statistics of the audio tower's output) "
         "fitted on the training clips of emotion and events, as recorded, through the telephone line, in a room and "
         "cut to a short loudest excerpt, and fused with the LLM's answer")
old = json.load(open('models/coat-tiny/manifest.json'))
src, out, version = sys.argv[1], sys.argv[2], sys.argv[3]
real = load_real_waves('../shared/data/ravdess', 4, max_seconds=_max_seconds(argparse.Namespace(model=src)))
m = export_bundle(src, out, name=old['name'], version=version, license=old['license'],
                  data_provenance=old['data_provenance'], base_model=old['base_model'], notes=NOTES,
                  real_waves=real, force=True)
print([(r.component, r.max_abs_diff) for r in m.parity])
