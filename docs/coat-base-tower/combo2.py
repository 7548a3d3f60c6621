import sys, numpy as np
sys.path.insert(0, '/work/main')
from bench.accuracy.whisper_layers import probe
for name in ('ravdess', 'us8k', 'emovo', 'turev'):
    t = np.load(f'/work/wb/feat-tiny-{name}.npz'); b = np.load(f'/work/wb/feat-base-{name}.npz')
    assert (t['y'] == b['y']).all()
    y, g = t['y'], t['g']
    print(name, 'tiny3 %.3f' % probe(t['x'][:, 3], y, g), 'base3 %.3f' % probe(b['x'][:, 3], y, g),
          'tiny3+base3 %.3f' % probe(np.concatenate([t['x'][:, 3], b['x'][:, 3]], 1), y, g),
          'tiny3+base2 %.3f' % probe(np.concatenate([t['x'][:, 3], b['x'][:, 2]], 1), y, g), flush=True)
