"""Shared test settings: tiny models run fastest (and do not fight each other or DataLoader
workers for the 2 CI cores) on one intra-op thread; Ctrl-C reaches the processes tests start."""
import signal

import torch

torch.set_num_threads(1)

# Tests press Ctrl-C (SIGINT) on `tstam extract` and `tstam serve` as a terminal would. A suite run in
# the background of a non-interactive shell (`make test &`, some CI runners) inherits SIGINT ignored,
# and an ignored signal stays ignored across exec, so those processes would never see it. A handled
# signal is reset to its default on exec: the children then start as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from helpers.serve import serve_ckpts, server  # noqa: E402,F401  (session fixtures: one real `tstam serve`)
