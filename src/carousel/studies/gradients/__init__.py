"""The gradients study (``carousel study gradients``): why gates work, measured.

Twelve line-up models (``lineup``) train on the adding and copying tasks at growing T through the
trainer (``task``, ``run``); ``report`` writes the markdown report with its plots.
"""

from .lineup import STUDY_MODELS, StudyModel, henaff_orthogonal_cell, study_model
from .report import load_results, summary_table, write_report
from .run import QUICK, StudyConfig, config_dict, run_one, run_study
from .task import STUDY_TASKS, StudyRunOptions, StudyTask

__all__ = [
    "StudyConfig",
    "QUICK",
    "run_study",
    "run_one",
    "config_dict",
    "STUDY_MODELS",
    "StudyModel",
    "study_model",
    "henaff_orthogonal_cell",
    "StudyTask",
    "StudyRunOptions",
    "STUDY_TASKS",
    "write_report",
    "summary_table",
    "load_results",
]
