"""Why ``build_optimizer`` does not fuse SGD under an fp16 gradient scaler (and keeps fusing AdamW).

fp16 training with fused SGD ends in NaN. The cause is torch's fused SGD: handed the scaler's inf
check, it skips an overflowing step, but on the first step it has already made its momentum
buffers with ``empty_like`` and leaves them uninitialised; the next step reads them. The same
happens with the CPU fused kernel, so this canary runs here: it checks the contract of
``GradScaler`` (an overflowing step is skipped: the weights stay, and the next step is finite) on
torch's own optimisers. Fused SGD breaking it is a strict xfail: once torch fixes it, the case
passes, pytest reports XPASS(strict) as a failure, and the reason says that fusing can come back.
``tests/test_engine_gpu.py`` checks the optimiser the engine builds, on a GPU."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def poisoned_uninitialised_memory():
    """``torch.empty*`` fill floats with NaN (torch's own switch), so that reading memory nobody wrote
    shows up every time instead of depending on what the allocator hands back."""
    before = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = True
    yield
    torch.use_deterministic_algorithms(before[0])
    torch.utils.deterministic.fill_uninitialized_memory = before[1]


def _overflow_then_finite(opt_cls, **kw) -> tuple[bool, bool]:
    """(the overflowing first step left the weights untouched, the next finite step is finite)."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(64))
    opt = opt_cls([p], lr=0.1, **kw)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    w0 = p.detach().clone()
    bad = torch.ones(64)
    bad[0] = float("inf")
    for weights in (bad, torch.ones(64)):
        opt.zero_grad(set_to_none=True)
        scaler.scale((p * weights).sum()).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        if weights is bad:
            untouched = torch.equal(p.detach(), w0)
    return untouched, bool(torch.isfinite(p).all())


FUSED_SGD_BUG = ("torch's fused SGD reads momentum buffers it never wrote after a skipped first step; "
                 "if this case passes (XPASS), torch has fixed it: let tstam.engine.optim.build_optimizer fuse SGD "
                 "under a gradient scaler again, and drop this xfail")


@pytest.mark.parametrize("fused", [False, pytest.param(True, marks=pytest.mark.xfail(
    strict=True, raises=AssertionError, reason=FUSED_SGD_BUG))])
def test_sgd_momentum_survives_an_overflowing_first_step(fused):
    assert _overflow_then_finite(torch.optim.SGD, momentum=0.9, fused=fused) == (True, True)


@pytest.mark.parametrize("fused", [False, True])
def test_adamw_survives_an_overflowing_first_step(fused):
    assert _overflow_then_finite(torch.optim.AdamW, fused=fused) == (True, True)


def test_resume_keeps_the_resuming_runs_implementation():
    """A checkpoint's optimiser groups carry ``fused``; torch's ``load_state_dict`` would bring a
    fused SGD back into a run that must not fuse (one under a gradient scaler)."""
    from tstam.engine.optim import load_optimizer_state

    p = torch.nn.Parameter(torch.randn(8))
    saved = torch.optim.SGD([p], lr=0.1, momentum=0.9, fused=True)
    p.grad = torch.ones(8)
    saved.step()
    state = saved.state_dict()
    plain, ours = (torch.optim.SGD([p], lr=0.1, momentum=0.9) for _ in range(2))
    plain.load_state_dict(state)
    assert plain.param_groups[0]["fused"] is True  # what torch does
    load_optimizer_state(ours, state)
    assert not ours.param_groups[0]["fused"]
    torch.testing.assert_close(ours.state[p]["momentum_buffer"], saved.state[p]["momentum_buffer"])
