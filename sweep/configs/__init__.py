"""Config as data: the frozen dataclasses of a run and a sweep, their JSON form, presets and the seed paper's numbers."""
