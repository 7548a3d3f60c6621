# How the 1.6.0 candidate bundle was exported: python docs/coat-tiny-speaker-baseline/export.py SRC OUT
# SRC: the readout CLI's output on the 1.4.1 bundle (python -m edge_coat.train.readout docs/coat-tiny-1.4/run
# --model <1.4.1 bundle> --out SRC --relative emotion [--with-absolute]), plus MODEL_CARD.md and NOTICE.whisper; the manifest's fields are 1.4.1's.
import argparse
import json
import sys

sys.path.insert(0, '.')
from edge_coat.commands.export import _max_seconds  # noqa: E402
from edge_coat.export.bundle import export_bundle  # noqa: E402
from edge_coat.export.parity import load_real_waves  # noqa: E402

old = json.load(open('models/coat-tiny/manifest.json'))
src, out = sys.argv[1], sys.argv[2]
real = load_real_waves('../shared/data/ravdess', 4, max_seconds=_max_seconds(argparse.Namespace(model=src)))
cfg = json.load(open(f'{src}/coat_config.json'))
how = ("reads each window's statistics beside their difference from its stream's baseline (the mean of its last 8 "
       "windows)" if cfg.get('readout_with_absolute') else
       "reads each window relative to its stream's baseline (the mean of its last 8 windows)")
m = export_bundle(src, out, name=old['name'], version="1.6.0", license=old['license'],
                  data_provenance=old['data_provenance'], base_model=old['base_model'],
                  notes="1.4.1's weights with an answer readout (a logistic regression on the statistics of the audio "
                        "tower's output) fitted on the training clips of emotion and events and fused with the LLM's "
                        "answer; the emotion readout " + how,
                  real_waves=real, force=True)
print([(r.component, r.max_abs_diff) for r in m.parity])
