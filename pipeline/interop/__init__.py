"""Interoperability with other tools' file formats (CEINMS 0.9 subjects and set-ups).

* :mod:`pipeline.interop.ceinms_subject` - CEINMS subject XML and excitation-generator XML;
* :mod:`pipeline.interop.ceinms_curves` - the project's curves as CEINMS curve points;
* :mod:`pipeline.interop.ceinms_params` - between CEINMS subjects and the calibration's parameter
  layout (start values, evaluation, export of a ``parameters.json``);
* :mod:`pipeline.interop.ceinms_setup` - CEINMScalibrate set-up, calibration and trial files.
"""
