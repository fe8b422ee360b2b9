"""``tstam weights``: the public ImageNet weight files tstam knows, and their download into the cache."""
from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from tstam.models import PRETRAINED

    p = sub.add_parser("weights", help="list or download the public ImageNet BN-Inception weight files",
                       description="list: every known file with its URL, SHA-256 (prefix), origin, licence and "
                                   "whether it is in the cache. download: fetch files into the cache "
                                   "($TSTAM_CACHE, else ~/.cache/tstam), hash-checked and resumable; "
                                   "run.init_weights=<name> then reads them from there (and downloads on first "
                                   "use). Offline: download the URL by hand and put the file where the error "
                                   "message says.")
    p.add_argument("action", nargs="?", choices=("list", "download"), default="list", help="default: list")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"files to download: {', '.join(PRETRAINED)} (default: imagenet)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from tstam.errors import InputError
    from tstam.models import PRETRAINED, weights_file

    if args.action == "list":
        if args.names:
            raise InputError("tstam weights list takes no names; give them to tstam weights download")
        for f in PRETRAINED.values():
            where = f.path()
            print(f"{f.name}: {f.filename}\n  url      {f.url}\n  sha256   {f.sha256}... (prefix)\n"
                  f"  origin   {f.origin}\n  licence  {f.licence}\n"
                  f"  cache    {where}{'' if where.is_file() else ' (not downloaded)'}")
        return 0
    names = args.names or ["imagenet"]
    unknown = [n for n in names if n not in PRETRAINED]
    if unknown:
        raise InputError(f"weight file name(s) {unknown} are not valid; expected {', '.join(PRETRAINED)}")
    for name in names:
        print(f"{name}: {weights_file(name)} (SHA-256 {PRETRAINED[name].sha256}... checked)")
    return 0
