"""What the tests share, by subject; no tests here, and no test module imports another.

- ``realdata``: paths of the vendored real files (``tests/data``);
- ``cli``: ``python -m tstam`` as a real process;
- ``processes``: process trees, deadlines for anything a test waits on, a process's output read
  line by line with a deadline;
- ``engine_store``: a tiny real frame store and training configs;
- ``models``: tiny trained-model files and small videos;
- ``serve``: a real ``tstam serve`` and an HTTP client (the session fixtures of ``conftest.py``);
- ``clips``: small encoded clips and AVI headers that over-count;
- ``extraction``: extraction runs killed at a known point (``extract_driver.py`` is the script
  they run).

``tests`` is on ``sys.path`` (``pythonpath`` in pyproject.toml), so ``import helpers`` works from
``make test``, from ``pytest tests/test_x.py`` and in the tests' own subprocesses given
``PYTHONPATH=tests``.
"""
