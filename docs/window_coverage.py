"""How often TSN's training sampling misses the action window of a synthetic benchmark (docs/results.md,
"The goal, and what we tried for it"): per number of segments, the share of training draws in which no
snippet centre lies inside the clip's action window.

    python docs/window_coverage.py ablate-localized/bench
"""
from __future__ import annotations

import argparse

from tstam.demo import window_miss_rate
from tstam.synthetic import load_annotations


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bench", help="a folder written by tstam synth")
    p.add_argument("--segments", default="4,6,8,12", help="comma-separated numbers of segments")
    p.add_argument("--draws", type=int, default=20, help="training draws per clip (default: 20)")
    args = p.parse_args()
    ann = load_annotations(args.bench)
    for n in (int(x) for x in args.segments.split(",")):
        rates = {m: window_miss_rate(ann, num_segments=n, modality=m, new_length=length, draws=args.draws)
                 for m, length in (("rgb", 1), ("flow", 5))}
        print(f"{n} segments: no snippet in the window in {100 * rates['rgb']:.1f} % of RGB and "
              f"{100 * rates['flow']:.1f} % of flow training draws")


if __name__ == "__main__":
    main()
