"""Calibration of the EMG-driven NMS model (paper 002, eqs. 4-5).

Modules (import them directly; this package imports nothing heavy on its own):

* :mod:`~pipeline.calibrate.spec` - which parameters, sharing/groups, bounds, initial values,
  bounded mapping (:func:`~pipeline.calibrate.spec.build_spec`);
* :mod:`~pipeline.calibrate.problem` - NMS input files checked and batched
  (:func:`~pipeline.calibrate.problem.load_trials`);
* :mod:`~pipeline.calibrate.losses` - the objective (tracking + penalties);
* :mod:`~pipeline.calibrate.least_squares` - bounded least squares with exact Jacobians
  (default); :mod:`~pipeline.calibrate.gradient` - AdamW calibration;
  :mod:`~pipeline.calibrate.annealing` - the CEINMS baseline;
* :mod:`~pipeline.calibrate.run` - :func:`~pipeline.calibrate.run.calibrate`, one calibration end to
  end (optimise, identifiability, parameters.json document);
* :mod:`~pipeline.calibrate.identifiability` - Gauss-Newton standard errors and correlations;
* :mod:`~pipeline.calibrate.execute` / :mod:`~pipeline.calibrate.metrics` - open-loop execution,
  ``.sto`` outputs, RMSE and R²;
* :mod:`~pipeline.calibrate.generalisation` - does the calibration carry over to the held-out
  trials (R² per DOF against the calibration fit);
* :mod:`~pipeline.calibrate.export` - reading the scaled .osim, writing calibrated.osim and
  parameters.json;
* :mod:`~pipeline.calibrate.synthetic` - problems with known truth (benchmarks and tests).
"""
