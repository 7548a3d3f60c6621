import sys, csv, time, numpy as np, torch
sys.path.insert(0, '/work/main')
from pathlib import Path
from transformers import WhisperFeatureExtractor
from bench.accuracy.whisper_layers import block_features, probe
from edge_coat.data.folder import load_audio
from edge_coat.model.whisper import load_encoder
torch.set_num_threads(1)
enc_dir, tag = sys.argv[1], sys.argv[2]
enc = load_encoder(enc_dir); ex = WhisperFeatureExtractor(feature_size=enc.config.num_mel_bins)
held = set(Path('/work/main/runs/coat-tiny-42/us8k_holdout.txt').read_text().replace(',', '\n').split())
data = Path('/work/shared/data')
sets = {'ravdess': ('ravdess', lambda r: r['speaker'] if int(r['speaker']) <= 13 else None),
        'us8k': ('urbansound8k', lambda r: r['file'].split('-')[0] if r['file'].split('-')[0] not in held else None),
        'emovo': ('emovo', lambda r: r['speaker'] if r['speaker'] not in ('f3','m3') else None),
        'turev': ('turev', lambda r: r['speaker'] if r['speaker'] != '1984' else None)}
for name, (folder, gof) in sets.items():
    root = data / folder
    clips = [(r, gof(r)) for r in csv.DictReader(open(root / 'labels.csv'))]
    clips = [(r, g) for r, g in clips if g is not None]
    t0 = time.time()
    x = np.stack([block_features(enc, ex, load_audio(root / r['file'])[:160000], 2.0) for r, _ in clips])
    y = np.array([r['label'] for r, _ in clips]); g = np.array([g for _, g in clips])
    np.savez(f'/work/wb/feat-{tag}-{name}.npz', x=x, y=y, g=g)
    ua = [probe(x[:, b], y, g) for b in range(x.shape[1])]
    print(tag, name, len(clips), ' '.join(f'{u:.3f}' for u in ua), f'{time.time()-t0:.0f}s', flush=True)
