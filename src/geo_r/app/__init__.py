"""``geo-r app``: a local Gradio page that asks a checkpoint where a photo was taken (see :mod:`geo_r.app.cli`)."""
