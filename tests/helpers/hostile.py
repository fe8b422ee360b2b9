"""Hostile inputs as an attacker writes them: YAML alias bombs, self-referring and deeply nested
documents, files that load with ``weights_only`` but carry malformed facts."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from tstam.checkpoint import load_checkpoint, save_checkpoint


def alias_bomb_value(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" YAML value: ``width ** levels`` strings once its aliases are expanded, in
    about 400 bytes."""
    text = "&l0 [" + ",".join(["lol"] * width) + "]"
    for i in range(1, levels):
        text = f"[{text},&l{i} [" + ",".join([f"*l{i - 1}"] * width) + "]]"
    return text


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """A train config whose ``model.se_blocks`` is :func:`alias_bomb_value`: a key tstam knows, so
    its value is checked (and, unbounded, shown in the message)."""
    return f"model:\n  se_blocks: {alias_bomb_value(levels, width)}\n"


SELF_REFERENCE = "model:\n  se_blocks: &a [*a]\n"                       # a list that holds itself
DEEP_NESTING = "model:\n  se_blocks: " + "[" * 1000 + "]" * 1000 + "\n"  # PyYAML's composer recursion: past Python's limit


def write_config_files(folder: Path) -> dict[str, Path]:
    """Config files a user must get a clear refusal for: {name: path}."""
    files = {
        "bomb": (alias_bomb(), "bomb.yaml"),
        "self": (SELF_REFERENCE, "self.yaml"),
        "deep": (DEEP_NESTING, "deep.yaml"),
    }
    out = {}
    for key, (text, name) in files.items():
        out[key] = folder / name
        out[key].write_text(text)
    out["latin1"] = folder / "latin1.yaml"
    out["latin1"].write_bytes("run:\n  out_dir: caf\xe9\n".encode("latin-1"))
    out["big"] = folder / "big.yaml"
    out["big"].write_text("#" * (1 << 20) + "\n")  # one byte over 1 MiB, only a comment
    return out


def malformed_checkpoint(src: Path, dst: Path, *, data: dict[str, Any] | None = None, **entries: Any) -> Path:
    """``src`` (a tstam checkpoint) saved as ``dst`` with top-level ``entries`` replaced and its
    stored config's ``data`` section updated with ``data``: a file ``torch.load(weights_only=True)``
    reads, holding facts tstam never writes."""
    st = load_checkpoint(src)
    st.update(entries)
    if data is not None:
        st["config"] = {**st.get("config", {}), "data": {**st.get("config", {}).get("data", {}), **data}}
    return save_checkpoint(dst, st)


def safetensors_with_meta(dst: Path, meta_text: str) -> Path:
    """A safetensors file of one tensor whose ``tstam`` metadata is ``meta_text``."""
    import torch
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(dst), metadata={"tstam": meta_text})
    return dst


