"""Subcommands ``ceinms-export`` and ``ceinms-evaluate``: CEINMS 0.9 subjects in and out.

``ceinms-export`` writes a calibration's ``parameters.json`` as a calibrated CEINMS subject XML
(DOFs each MTU spans from the NMS inputs) and, with ``--study``/``--subject``, the excitation
generator XML of the subject's model (``models.<model>.excitations``), so CEINMS can execute it.
``ceinms-evaluate`` runs a CEINMS subject (CEINMS's model variant: stiff tendon, its
``percentageChange`` and ``emDelay``) on NMS inputs and writes its CEINMS-objective loss and the
RMSE / R² per trial and DOF. ``calibrate --ceinms-subject`` starts a calibration from a subject.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline.cli._common import add_command
from pipeline.errors import ConfigError, describe
from pipeline.fileio import write_json_atomic

log = logging.getLogger(__name__)


def _export(args: argparse.Namespace) -> int:
    from pipeline.calibrate.export import read_parameters
    from pipeline.calibrate.problem import load_trials
    from pipeline.interop.ceinms_params import dofs_from_batch, subject_from_document
    from pipeline.interop.ceinms_subject import (
        excitation_generator,
        write_excitation_generator,
        write_subject,
    )

    document = read_parameters(args.parameters)
    batch = load_trials(args.inputs, mtu_names=list(document.get("mtus") or {}))
    subject = subject_from_document(document, dofs_from_batch(batch),
                                    start_subject_file=str(args.parameters),
                                    source=str(args.parameters))
    write_subject(args.out, subject)
    log.info("wrote %s (%d MTUs, %d DOFs)", args.out, len(subject.mtus), len(subject.dofs))
    if args.excitation_generator:
        if not (args.study and args.subject):
            raise ConfigError(describe(None, "--excitation-generator needs --study and --subject",
                                       "name the study and subject whose EMG mapping to write"))
        from pipeline.study import load_study

        study = load_study(args.study, check_files=False)
        model = study.subject(args.subject)["model"]
        excitations = study.config["models"][model].get("excitations", {})
        write_excitation_generator(args.excitation_generator,
                                   excitation_generator(excitations, mtu_names=subject.mtu_names))
        log.info("wrote %s", args.excitation_generator)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from pipeline.calibrate.ceinms_objective import CeinmsObjective, simulate_ceinms
    from pipeline.calibrate.execute import batch_metrics
    from pipeline.calibrate.problem import load_trials
    from pipeline.calibrate.spec import build_spec
    from pipeline.cli.calibrate import _trial_labels
    from pipeline.interop.ceinms_params import (
        apply_subject_values,
        muscle_parameters,
        muscle_properties,
    )
    from pipeline.interop.ceinms_subject import read_subject

    subject = read_subject(args.subject_xml)
    source = str(args.subject_xml)
    batch = load_trials(args.inputs)
    params = muscle_parameters(subject, batch.mtu_names, source=source)
    spec = apply_subject_values(build_spec(muscle_properties(subject, batch.mtu_names,
                                                            source=source), {"parameters": []}),
                                subject, source=source)
    objective = CeinmsObjective(spec, batch, tendon="stiff", emd_s=subject.em_delay_s,
                                percentage_change=subject.percentage_change)
    with torch.no_grad():
        output = simulate_ceinms(params, batch, emd_s=subject.em_delay_s,
                                 percentage_change=subject.percentage_change)
        terms = objective.terms_from_output(output)
    labels = _trial_labels(args.inputs)
    result = {"subject_xml": source, "objective": "ceinms", "tendon": "stiff",
              "loss": {"total": float(terms.total), "tracking": float(terms.tracking),
                       "penalty": float(terms.penalty)},
              "dof_names": list(batch.dof_names), **batch_metrics(batch, output, labels)}
    write_json_atomic(args.json, result)
    log.info("CEINMS subject %s: loss %.6g, mean RMSE %.4g N*m, mean R2 %.4g", source,
             result["loss"]["total"], result["mean_rmse_nm"], result["mean_r2"] or float("nan"))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "ceinms-export", _export,
                         "write a calibration as a CEINMS 0.9 subject XML (+ excitation "
                         "generator)")
    parser.add_argument("--parameters", required=True, type=Path, help="parameters.json")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help="nms_inputs.npz files (which DOFs each MTU spans)")
    parser.add_argument("--out", required=True, type=Path, help="subject XML to write")
    parser.add_argument("--excitation-generator", type=Path, default=None,
                        help="also write CEINMS's excitation generator XML here")
    parser.add_argument("--study", default=None, help="study folder (EMG mapping)")
    parser.add_argument("--subject", default=None, help="subject name in subjects.tsv")
    parser = add_command(subparsers, "ceinms-evaluate", _evaluate,
                         "run a CEINMS 0.9 subject on NMS inputs: CEINMS-objective loss, RMSE, R2")
    parser.add_argument("--subject-xml", required=True, type=Path, help="CEINMS subject XML")
    parser.add_argument("--inputs", nargs="+", required=True, help="nms_inputs.npz files")
    parser.add_argument("--json", required=True, type=Path, help="result JSON to write")
