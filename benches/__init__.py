"""panelfast's benchmarks: ``make bench`` (``python -m benches``).

Every module here with a ``run() -> list[Record]`` function is a benchmark.
Each record compares panelfast with a baseline measured in the same run (the
machines are shared and noisy, so only ratios and medians mean anything);
``ratio > 1`` always means panelfast is better. Results go to
``benches/results.json``.
"""
