"""Task kinds: a task config's `kind` names a module of xrobust/kinds/, whose object encodes, batches and models
the task; pair and multiple choice on a few real rows."""

from __future__ import annotations

import pytest
from helpers import compose_config

from xrobust.data.sources import make_source
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.kinds import TaskKind, available_kinds, get_kind
from xrobust.models.hub import load_tokenizer

# COPA's first development items (Roemmele et al. 2011), as XCOPA's English rows carry them.
COPA = {
    "id": [0, 1],
    "premise": ["The man turned on the faucet.", "The girl found a bug in her cereal."],
    "choice1": ["The toilet filled with water.", "She poured milk in the bowl."],
    "choice2": ["Water flowed from the spout.", "She lost her appetite."],
    "question": ["effect", "effect"],
    "label": [1, 1],
}


def task_config(name: str, **changes):
    cfg = compose_config([f"task={name}"]).task
    for key, value in changes.items():
        cfg[key] = value
    return cfg


@pytest.fixture(scope="module")
def tokenizer(me5_dir):
    return load_tokenizer(me5_dir)


def test_every_module_of_the_package_is_a_kind_found_by_its_name():
    assert available_kinds() == ["multiple_choice", "pair"]
    for name in available_kinds():
        kind = get_kind(name)
        assert isinstance(kind, TaskKind) and kind.name == name
    assert TaskSpec.from_config(task_config("xcopa")).task_kind is get_kind("multiple_choice")


@pytest.mark.parametrize("name", ["token_classification", "base", "../pair"])
def test_an_unknown_kind_is_one_line_naming_the_kinds_there_are(name):
    with pytest.raises(XrobustError) as error:
        TaskSpec.from_config(task_config("sample", kind=name))
    message = str(error.value)
    assert "\n" not in message and message.startswith("task 'sample': task.kind=")
    assert "available: multiple_choice, pair" in message


@pytest.mark.parametrize(
    ("task", "changes", "message"),
    [
        ("sample", {"text_fields": ["premise", "hypothesis", "extra"]}, "a pair task needs exactly two"),
        ("xcopa", {"label_names": ["choice1"]}, "one label name per choice"),
        ("xcopa", {"text_fields": ["choice1", "choice2"]}, "context field followed by the choices"),
    ],
)
def test_each_kind_checks_its_own_fields(task, changes, message):
    with pytest.raises(XrobustError, match=message):
        TaskSpec.from_config(task_config(task, **changes))


def test_pair_rows_encode_with_truncation_flags_and_pad_into_a_batch(tokenizer):
    task = TaskSpec.from_config(task_config("sample"))
    rows = make_source(task, None).load("dev", "en").select(range(4)).to_dict()
    kind = task.task_kind
    encoded = kind.encode(rows, tokenizer, task, max_length=34)
    full = [len(ids) for ids in tokenizer(rows["premise"], rows["hypothesis"])["input_ids"]]
    assert encoded["truncated"] == [n > 34 for n in full] and encoded["labels"] == rows["label"]
    assert any(encoded["truncated"]) and not all(encoded["truncated"])
    assert all(len(ids) == min(n, 34) for ids, n in zip(encoded["input_ids"], full, strict=True))
    features = [{"id": rows["id"][i], **{k: v[i] for k, v in encoded.items() if k != "truncated"}} for i in range(4)]
    batch = kind.collator(tokenizer)(features)
    assert batch["input_ids"].shape == (4, 34) and batch["id"].tolist() == rows["id"]
    assert kind.auto_model().__name__ == "AutoModelForSequenceClassification"
    assert kind.extra_test_sets(task, generalized=True, languages=None).languages == list(task.languages)
    assert kind.extra_test_sets(task, generalized=False, languages=None) is None


def test_choice_rows_encode_one_pair_per_choice_and_pad_to_batch_by_choices(tokenizer):
    task = TaskSpec.from_config(task_config("xcopa"))
    kind = task.task_kind
    encoded = kind.encode(COPA, tokenizer, task, max_length=64)
    assert [len(choices) for choices in encoded["input_ids"]] == [2, 2] and encoded["truncated"] == [False, False]
    second_choice = tokenizer.decode(encoded["input_ids"][0][1], skip_special_tokens=True)
    assert "faucet. What happened as a result?" in second_choice and "spout" in second_choice
    features = [{"id": COPA["id"][i], **{k: v[i] for k, v in encoded.items() if k != "truncated"}} for i in range(2)]
    batch = kind.collator(tokenizer)(features)
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["attention_mask"].shape == batch["input_ids"].shape
    assert batch["labels"].tolist() == [1, 1] and batch["id"].tolist() == [0, 1]
    assert kind.auto_model().__name__ == "AutoModelForMultipleChoice"
    with pytest.raises(XrobustError, match="eval.generalized needs a pair task"):
        kind.extra_test_sets(task, generalized=True, languages=None)


def test_the_metric_is_micro_accuracy_over_label_indices():
    import torch

    metric = get_kind("pair").metric(3)
    assert metric(torch.tensor([0, 2, 1, 1]), torch.tensor([0, 2, 2, 1])).item() == pytest.approx(0.75)
