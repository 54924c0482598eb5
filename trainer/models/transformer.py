"""model=transformer: a Hugging Face AutoModelForSequenceClassification behind the harness's interface (token ids in,
logits out), pretrained from a hub name or a local folder, or a small random one built from a config.

Whatever the loss (every variant of trainer.models.losses), the model only returns logits: the harness computes the
loss, which is how class weights and the other variants reach a transformer (transformers' own Trainer has no such
option; its issues #1755, #7024, #15450, #35061 ask for one).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from trainer.config import pretrained_unreachable
from trainer.data.types import Vocabulary
from trainer.errors import UserError
from trainer.models.text import trim

log = logging.getLogger(__name__)

# The dropout probabilities a transformers config may hold (BERT, RoBERTa, DistilBERT, ...): regularization=dropout
# sets those the config has; without it the model keeps its own (0.1 in BERT's).
DROPOUTS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout", "dropout", "attention_dropout",
            "seq_classif_dropout")


class SequenceClassifier(nn.Module):
    """A transformers sequence classifier taking token ids (N, L) padded with pad_id and returning logits (N, C);
    the attention mask is where the ids are not padding, and each batch is trimmed to its longest document."""

    def __init__(self, model: nn.Module, pad_id: int) -> None:
        super().__init__()
        self.model, self.pad_id = model, pad_id

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = trim(x, self.pad_id)
        return self.model(input_ids=x, attention_mask=(x != self.pad_id).long()).logits


def transformer(in_shape: Sequence[int], num_classes: int, vocabulary: Vocabulary, pretrained: str | None = None,
                config: dict[str, Any] | None = None, dropout: float = 0.0) -> nn.Module:
    """AutoModelForSequenceClassification with num_classes outputs: from_pretrained(pretrained) (its head fresh when
    it had another number of classes), or from_config(AutoConfig.for_model(**config)) with the vocabulary's size,
    window and padding id. dropout > 0 (regularization=dropout) sets every dropout probability the config has."""
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    transformers.logging.set_verbosity_error()  # its load report would print a table per run; our line says it
    if pretrained:
        try:
            settings = AutoConfig.from_pretrained(str(pretrained))
        except (OSError, ValueError) as e:
            raise pretrained_unreachable(str(pretrained), e) from e
        changes = {k: dropout for k in DROPOUTS if dropout and getattr(settings, k, None) is not None}
        model = AutoModelForSequenceClassification.from_pretrained(
            str(pretrained), num_labels=num_classes, ignore_mismatched_sizes=True, **changes)
        window = getattr(model.config, "max_position_embeddings", None)
        if window is not None and vocabulary.max_length > window:
            raise UserError(f"tokenizer.max_length={vocabulary.max_length} is more than model.pretrained="
                            f"{pretrained}'s window of {window} tokens: set tokenizer.max_length={window} or less.")
        rows = model.get_input_embeddings().num_embeddings
        if rows < vocabulary.size:
            raise UserError(f"model.pretrained={pretrained} has {rows} token embeddings, fewer than the tokenizer's "
                            f"{vocabulary.size} tokens: use tokenizer=pretrained (the model's own).")
        log.info("model.pretrained=%s loaded for %d classes (a classification head of another size, or none, is "
                 "initialised fresh)", pretrained, num_classes)
    else:
        settings = dict(config or {})
        kind = settings.pop("model_type", "bert")
        try:
            model_config = AutoConfig.for_model(kind, vocab_size=vocabulary.size, pad_token_id=vocabulary.pad_id,
                                                max_position_embeddings=vocabulary.max_length,
                                                num_labels=num_classes, **settings)
        except (ValueError, TypeError) as e:
            raise UserError(f"model.config: transformers cannot build a {kind!r} config from {settings} ({e}).") from e
        for k in DROPOUTS:
            if dropout and getattr(model_config, k, None) is not None:
                setattr(model_config, k, dropout)
        model = AutoModelForSequenceClassification.from_config(model_config)
    return SequenceClassifier(model, vocabulary.pad_id)
