"""`transformers.Trainer` for Sa2VA: the stock trainer, logging the loss terms (`lm_loss`, `mask_bce_loss`,
`mask_dice_loss`) next to the total."""

import torch
from transformers import Trainer


LOSS_TERMS = ("lm_loss", "mask_bce_loss", "mask_dice_loss")


class Sa2VATrainer(Trainer):
    """A `Trainer` that averages each loss term of [`Sa2VACausalLMOutputWithPast`] over the logging interval and logs
    it with the total loss (training only; evaluation logs as usual)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loss_term_sums: dict[str, float] = {}
        self._loss_term_counts: dict[str, int] = {}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            for name in LOSS_TERMS:
                value = outputs.get(name)
                if value is not None:
                    self._loss_term_sums[name] = self._loss_term_sums.get(name, 0.0) + float(value.detach())
                    self._loss_term_counts[name] = self._loss_term_counts.get(name, 0) + 1
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if "loss" in logs:
            for name, total in self._loss_term_sums.items():
                mean = torch.tensor(total / self._loss_term_counts[name], device=self.args.device)
                logs[name] = round(float(self.accelerator.reduce(mean, reduction="mean")), 4)
            self._loss_term_sums, self._loss_term_counts = {}, {}
        super().log(logs, *args, **kwargs)


__all__ = ["LOSS_TERMS", "Sa2VATrainer"]
