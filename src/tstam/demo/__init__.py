"""``tstam demo``: the whole pipeline on the embedded synthetic benchmark, with a report (issue 6).

    from tstam.demo import DemoConfig, run_demo
    result = run_demo(DemoConfig.make(out="demo"))
    print(result.report, result.top1)
"""
from .config import DemoConfig, demo_threads, recipe_path
from .pipeline import DemoResult, run_demo, stream_config

__all__ = ["DemoConfig", "DemoResult", "run_demo", "stream_config", "recipe_path", "demo_threads"]
