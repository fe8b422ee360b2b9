"""Training and testing (paper section 4.2, docs/design.md, Training recipe): configs, checkpoints, the training
loop, the 25-frame x 10-crop test protocol, metrics, late fusion and reports.

Submodules are imported where used (``tstam.engine.train``, ``tstam.engine.evaluate``, ...), so
that reading a score file does not import the model.
"""
