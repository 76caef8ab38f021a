"""Test-time scaling of ``geo-r eval --num_samples K``: choose one answer per photo out of K samples (greedy,
medoid, vote), score each choice, say how sure the samples are, and the report's section on it.

:mod:`.aggregate` (choosing), :mod:`.run` (every aggregate over a run), :mod:`.metrics` (their metrics),
:mod:`.confidence` (spread deciles, abstention, the plot) and :mod:`.report` (the report section).
"""
