"""Training data: dataset folders, the synthetic factory-sound generator and task prompts.

* ``edge_coat.data.folder``: ``DatasetFolder`` / ``validate_folder`` (``labels.csv`` + audio, any
  rate or channel count -> 16 kHz mono), ``load_audio``, group-aware splits.
* ``edge_coat.data.factory``: machines with and without faults (``render_clip``,
  ``render_scene``, ``write_dataset``; ``python -m edge_coat.data.factory``).
* ``edge_coat.data.tasks``: task name -> prompt, candidate answers, answer text and captions.
"""
