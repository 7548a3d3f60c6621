import sys, numpy as np
sys.path.insert(0, '/work/main')
from bench.accuracy.whisper_layers import probe
for tag, combos in (('tiny', [(3,), (2, 3), (1, 2, 3)]), ('base', [(3,), (2, 3), (2, 3, 4), (1, 2, 3), (3, 4)])):
    for name in ('ravdess', 'us8k', 'emovo', 'turev'):
        d = np.load(f'/work/wb/feat-{tag}-{name}.npz')
        x, y, g = d['x'], d['y'], d['g']
        res = []
        for c in combos:
            res.append(f"{'+'.join(map(str,c))}: cat {probe(np.concatenate([x[:, b] for b in c], 1), y, g):.3f} avg {probe(np.mean([x[:, b] for b in c], 0), y, g):.3f}")
        print(tag, name, ' | '.join(res), flush=True)
