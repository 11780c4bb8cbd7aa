"""Experiments that test the design notes' claims (issue 10): each claim a named `Experiment` of arms (one config
change each), run by `train_scripts/run_experiments.py --experiment NAME --seeds 0,1,2`.

`core` holds the machinery (training loop, statistics, verdicts, files), `data` the pools and evaluations,
`claims_trm` the claims about the product model's blocks, `claims_crossmodal` the cross-modal transfer test and
`claims_fusion` the two-modality fusion study.
"""

from .claims_crossmodal import EXPERIMENTS as _CROSSMODAL
from .claims_fusion import EXPERIMENTS as _FUSION
from .claims_trm import EXPERIMENTS as _TRM
from .core import SCALES, Arm, Comparison, Experiment, RunResult, Scale

EXPERIMENTS = {experiment.name: experiment for experiment in (*_TRM, *_CROSSMODAL, *_FUSION)}

__all__ = ["EXPERIMENTS", "SCALES", "Arm", "Comparison", "Experiment", "RunResult", "Scale"]
