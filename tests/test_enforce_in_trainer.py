"""Masks hold when the Hugging Face Trainer owns the loop and creates the optimizer."""

import pytest
import torch

from tickets.enforce import MaskEnforcer
from tickets.masks import Mask


@pytest.mark.parametrize("optim, wd", [("adamw_torch", 0.01), ("sgd", 0.0)])
def test_pruned_weights_stay_zero_through_trainer(tmp_path, optim, wd):
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=16, num_labels=2))
    prunable = {n: p for n, p in model.named_parameters()
                if n.startswith("bert.encoder.layer.") and n.endswith("weight") and p.dim() == 2}
    g = torch.Generator().manual_seed(0)
    mask = Mask({n: torch.rand(p.shape, generator=g) < 0.5 for n, p in prunable.items()})
    before = {n: p.detach().clone() for n, p in prunable.items()}
    data = [{"input_ids": torch.randint(0, 50, (12,), generator=g), "labels": torch.tensor(i % 2)} for i in range(32)]
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=8, learning_rate=0.01,
                             weight_decay=wd, optim=optim, report_to=[], save_strategy="no", logging_strategy="no",
                             use_cpu=True, disable_tqdm=True)
    with MaskEnforcer(prunable, mask):
        Trainer(model=model, args=args, train_dataset=data).train()
    for n, p in prunable.items():
        assert torch.all(p.detach()[~mask[n]] == 0.0), n
        assert not torch.equal(p.detach()[mask[n]], before[n][mask[n]])
