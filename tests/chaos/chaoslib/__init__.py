"""The chaos suite's harness: a private platform, load through the public APIs, faults, checks.

`tests/chaos/run.py` (`make chaos`) runs every scenario; `test_chaos_short.py` runs two of
them, shortened, inside `make test`.
"""
