"""Shared test settings: tiny models run fastest (and do not fight each other or DataLoader
workers for the 2 CI cores) on one intra-op thread."""
import torch

torch.set_num_threads(1)

from helpers.serve import serve_ckpts, server  # noqa: E402,F401  (session fixtures: one real `tstam serve`)
