"""Geo-R: teach vision-language models to geolocate photos with GRPO and geographic rewards."""

__version__ = "0.1.0"
