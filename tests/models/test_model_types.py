"""Model types (xrobust/models/model_types.py): one record per model_type, checked against the shipped
architectures on the meta device (no weights), and the non-embedding parameter count that compares model sizes."""

from __future__ import annotations

import pytest
import torch

from xrobust.errors import XrobustError
from xrobust.models.loading import load_classifier, load_config, lora_targets
from xrobust.models.model_types import MODEL_TYPES, model_type_record
from xrobust.models.parameter_counts import count_non_embedding_parameters

# One shipped architecture per model_type that has one (bert: the embedded me5 models, below).
ARCHITECTURES = ["xlmr-base.json", "xlmr-xl.json", "mdeberta-v3-base.json", "mt0-large.json"]


def skeleton(pretrained=None, **kwargs):
    with torch.device("meta"):
        return load_classifier(pretrained, 2, attn_implementation=None, weights=False, **kwargs, task_kind="pair")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_model_type_default_lora_targets_name_layers_of_its_architecture(architecture):
    record = model_type_record(load_config(architecture=architecture).model_type)
    assert record is not None
    model = skeleton(architecture=architecture, finetune={"method": "lora"})
    adapted = [name for name, module in model.named_modules() if hasattr(module, "lora_A")]
    for target in record.lora_targets:
        assert any(name.endswith(target) for name in adapted), target
    assert type(model.get_base_model()).__name__.startswith("Encoder") == record.encoder_only


def test_lora_targets_come_from_the_config_when_given_else_from_the_model_type():
    assert lora_targets(None, "mt5") == MODEL_TYPES["mt5"].lora_targets
    assert lora_targets({"bert": ["query"]}, "mt5") == MODEL_TYPES["mt5"].lora_targets
    assert lora_targets({"mt5": ["q"]}, "mt5") == ["q"] and lora_targets(["q", "v"], "llama") == ["q", "v"]
    with pytest.raises(XrobustError, match=r"no entry for model_type 'llama'.*model_types\.py") as error:
        lora_targets({}, "llama")
    assert "\n" not in str(error.value)


def test_encoder_only_model_types_name_a_transformers_encoder_class():
    for record in MODEL_TYPES.values():
        assert not record.encoder_only or record.encoder_model().__name__ == record.encoder_class


def test_me5_small_has_about_21m_parameters_besides_its_embedding_matrices(me5_dir):
    model = skeleton(me5_dir)
    embeddings = model.bert.embeddings
    matrices = [embeddings.word_embeddings, embeddings.position_embeddings, embeddings.token_type_embeddings]
    total = sum(p.numel() for p in model.parameters())
    body = count_non_embedding_parameters(model)
    assert total - body == sum(m.weight.numel() for m in matrices)
    assert 21e6 < body < 22e6 and total > 117e6


def test_the_t5_family_counts_only_its_shared_token_matrix_as_embedding():
    model = skeleton(architecture="mt0-large.json")
    total = sum(p.numel() for p in model.parameters())
    assert total - count_non_embedding_parameters(model) == model.get_input_embeddings().weight.numel()
