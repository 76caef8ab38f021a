"""Evaluation: batched generation, standard geolocation metrics, reports and maps (``geo-r eval``).

Modules, one job each: :mod:`.generate` (HF generate backend) and :mod:`.vllm_backend`; :mod:`.runner`
(resumable, torchrun-sharded generation loop); :mod:`.predictions` (the append-only predictions file);
:mod:`.scoring` (parse + distance + name checks per image); :mod:`.metrics` (acc@km, median, GeoScore, per
continent); :mod:`.continents`; :mod:`.published` (reference rows with sources); :mod:`.report` and
:mod:`.tables` (report.md), :mod:`.plots`, :mod:`.coastlines`, :mod:`.worldmap`, :mod:`.explorer` and
:mod:`.outputs` (files of a run); :mod:`.tts` (test-time scaling: K samples per photo); :mod:`.cli` (``geo-r eval``).
Importing this package loads none of them (no torch, no matplotlib).
"""
