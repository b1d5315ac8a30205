"""EMG-informed neuromusculoskeletal calibration pipeline."""
__version__ = "0.1.0"
