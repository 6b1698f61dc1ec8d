"""Data of the cost model: machine classes, the published anchors (spec §6) and the fitted constants.

``machine_classes.json`` and ``anchors.json`` are written by hand with their sources; ``fitted.json`` is
written only by ``pgdefer calibrate --write`` (:mod:`pgdefer.calibration`).
"""
