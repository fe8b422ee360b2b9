"""``tstam demo``: the whole pipeline on the embedded synthetic benchmark, with a report,
and the pieces ``tstam ablate`` builds on: the stream recipes, data preparation, training and
testing with reuse, and the attention analysis.

    from tstam.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig.make(out="demo"))
    print(result.report, result.top1)
"""
from .analysis import (
                       INTERVENTIONS,
                       analyse_stream,
                       group_accuracy,
                       intervention_weights,
                       snippet_centres,
                       window_miss_rate,
)
from .config import DemoConfig, demo_threads, recipe_path, stream_config, synth_config
from .pipeline import DemoResult, evaluate_stream, prepare_data, run_demo, torch_threads, train_stream

__all__ = ["DemoConfig", "DemoResult", "run_demo", "stream_config", "synth_config", "recipe_path", "demo_threads",
           "prepare_data", "train_stream", "evaluate_stream", "torch_threads", "INTERVENTIONS", "analyse_stream",
           "group_accuracy", "intervention_weights", "snippet_centres", "window_miss_rate"]
