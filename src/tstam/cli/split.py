"""``tstam split``: a folder of class folders -> train/val/test CSV files (stratified, seeded)."""
from __future__ import annotations

import argparse

from tstam.cli.args import int_range, share


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("split", help="split a folder of class folders into train/val/test CSV files",
                       description="Read a dataset folder (one sub-folder of videos per class; the class is the "
                                   "sub-folder's name) and write OUT/train.csv, OUT/test.csv and, with --val > 0, "
                                   "OUT/val.csv (columns path,label,video_id: the path relative to the folder, the "
                                   "class name, the frame-store id; docs/training.md, Your own videos). Each class "
                                   "is split on its own (stratified), the same for a --seed; the counts per class are "
                                   "printed. Train with annotations.format=folder annotations.path=FOLDER "
                                   "annotations.split_dir=OUT (the files may be edited: move rows between them).")
    p.add_argument("folder", help="the dataset folder: <folder>/<class name>/<any path>.mp4 (or .avi, .webm, ...)")
    p.add_argument("--out", required=True, help="folder to write train.csv, val.csv, test.csv into")
    p.add_argument("--test", type=share, default=0.2, help="share of each class's clips for testing (default 0.2)")
    p.add_argument("--val", type=share, default=0.1,
                   help="share of each class's clips for validation and best.pt (default 0.1; 0: none)")
    p.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0, help="which clips go where (default 0)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.data.folder import scan_folder, split_folder, write_split
    from tstam.files import check_writable_dir

    data = scan_folder(args.folder)
    parts = split_folder(data, test=args.test, val=args.val, seed=args.seed, where=args.folder)
    check_writable_dir(args.out)
    files = write_split(args.out, parts, data.classes)
    width = max(len(c) for c in [*data.classes, "class"])
    print(f"{'class':{width}s}  train  val  test")
    for label, name in enumerate(data.classes):
        n = [sum(r.label == label for r in parts[k]) for k in ("train", "val", "test")]
        print(f"{name:{width}s}  {n[0]:5d}  {n[1]:3d}  {n[2]:4d}")
    n = [len(parts[k]) for k in ("train", "val", "test")]
    print(f"{'all':{width}s}  {n[0]:5d}  {n[1]:3d}  {n[2]:4d}")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0
