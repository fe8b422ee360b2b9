"""``tstam ablate``: the paper's ablations (4.3.1-4.3.5), its baselines and the options beyond it,
trained on the synthetic benchmark for several seeds, with paired per-seed intervals.

Every setting is trained with the demo's recipe (``tstam.demo``) on the demo's, the localized or the
untrimmed preset's benchmark and frames (made or reused in ``out``), on the flow stream (where the action
window matters most and flow is the paper's stronger stream); the fusion weights are tried on the
saved test scores of the reference RGB and flow runs. ``settings`` holds the grid and the budgets,
``runner`` trains, tests and analyses each run (reused once finished), ``claims`` the claims as
data, ``stats`` the paired t intervals and verdicts, ``table`` the tables and pictures, ``rows``
every run's row as ``runs.csv`` (to rebuild the tables from, and to compare folders with).
"""
from .claims import CLAIMS, Claim, ClaimResult, check_claims
from .rows import METRICS, RUNS_NAME, Comparison, compare, find_setting, parse_side, read_runs, write_runs
from .runner import collect_rows, run_ablation, run_one, tables_from_csv
from .settings import AUX_WEIGHT, GROUPS, REFERENCE, AblateConfig, Group, Setting, grid, train_config
from .stats import Paired, paired, t_quantile, verdict
from .table import plot_alpha, plot_table, summarize, write_tables

__all__ = ["AblateConfig", "GROUPS", "Group", "Setting", "REFERENCE", "AUX_WEIGHT", "grid", "train_config",
           "run_ablation", "run_one", "collect_rows", "CLAIMS", "Claim", "ClaimResult", "check_claims", "Paired",
           "paired", "t_quantile", "verdict", "summarize", "write_tables", "plot_table", "plot_alpha", "RUNS_NAME",
           "METRICS", "write_runs", "read_runs", "tables_from_csv", "find_setting", "parse_side", "Comparison",
           "compare"]
