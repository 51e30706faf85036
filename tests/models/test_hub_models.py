"""Every model family's Hub loading path, offline: a tiny random-weight checkpoint of each real `model_type`, in
its Hub repo's layout (config.json, the weights file the repo ships, its tokenizer files), trained and tested
for 2 steps through `model=<name> model.pretrained=<folder>`; plus what a failed Hub load prints."""

from __future__ import annotations

import json
import re

import httpx
import pytest
import torch
from helpers import ROOT, compose_config, run_cli
from helpers.tiny_models import TOKENIZER_FILES, tiny_checkpoint
from huggingface_hub.errors import GatedRepoError
from safetensors.torch import load_file

from xrobust.errors import XrobustError
from xrobust.models.hub import hub_errors, load_tokenizer
from xrobust.models.loading import load_config
from xrobust.train import run

# model config -> (tiny model_type, its weights as model.safetensors; False: pytorch_model.bin only, a pickle).
MODELS = {
    "xlmr-base": ("xlm-roberta", True),
    "xlmr-large": ("xlm-roberta", True),
    "xlmr-xl": ("xlm-roberta-xl", True),
    "xlmr-xxl": ("xlm-roberta-xl", False),  # facebook/xlm-roberta-xxl: a pickle, no safetensors
    "mdeberta-v3-base": ("deberta-v2", False),  # the pickle path for a second family (and under LoRA)
    "mt0-large": ("mt5", True),
    "mt0-xl": ("mt5", True),
    "mt0-xxl": ("mt5", True),
}
# The classifier each family trains (docs/scaling.md's "class used"), and its input embedding in the checkpoint file.
CLASSES = {
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "xlm-roberta-xl": "XLMRobertaXLForSequenceClassification",
    "deberta-v2": "DebertaV2ForSequenceClassification",
    "mt5": "EncoderClassifier",
}
EMBEDDINGS = {
    "xlm-roberta": "roberta.embeddings.word_embeddings.weight",
    "xlm-roberta-xl": "roberta.embeddings.word_embeddings.weight",
    "deberta-v2": "deberta.embeddings.word_embeddings.weight",
    "mt5": "shared.weight",
}
XCOPA_LANGS = ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"]


def tiny_run(out, *overrides: str) -> list[str]:
    """2 training steps, one validation at the end (so testing reloads the best checkpoint), one test batch."""
    return [
        *overrides,
        "model.architecture=null",  # the tiny checkpoint is not the size the shipped config.json describes
        "logger=none",
        "checkpoint.keep_after_success=all",  # the tests read the trained state back from last.ckpt
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
        "trainer.val_check_interval=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        "data.batch_size=4",
        "data.eval_batch_size=8",
        "data.max_length=32",
        f"paths.cache_dir={out / 'cache'}",
    ]


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    """One tiny checkpoint per (model_type, weights format) the configs need, built once."""
    root = tmp_path_factory.mktemp("tiny-hub")
    return {
        key: tiny_checkpoint(root / f"{key[0]}-{'safetensors' if key[1] else 'bin'}", key[0], safetensors=key[1])
        for key in sorted(set(MODELS.values()))
    }


def weights_file(folder) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        return load_file(folder / "model.safetensors")
    return torch.load(folder / "pytorch_model.bin", weights_only=True)


def lightning_state(out) -> dict[str, torch.Tensor]:
    return torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def test_each_tiny_checkpoint_is_its_configs_family():
    """The shipped architecture of each model config has the model_type its tiny stand-in is built with."""
    for name, (model_type, _) in MODELS.items():
        assert load_config(architecture=f"xrobust/models/architectures/{name}.json").model_type == model_type


def test_tiny_checkpoints_have_the_hub_repo_layout(tiny_dirs):
    for (model_type, safetensors), folder in tiny_dirs.items():
        files = {p.name for p in folder.iterdir()}
        weights = {"model.safetensors"} if safetensors else {"pytorch_model.bin"}
        assert TOKENIZER_FILES[model_type] | weights | {"config.json"} <= files
        assert not files & ({"model.safetensors", "pytorch_model.bin"} - weights)
        assert json.loads((folder / "config.json").read_text())["model_type"] == model_type


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_trains_and_tests_from_a_hub_layout_checkpoint(name, tiny_dirs, tmp_path):
    model_type, safetensors = MODELS[name]
    folder = tiny_dirs[(model_type, safetensors)]
    cfg = compose_config(tiny_run(tmp_path, f"model={name}", f"model.pretrained={folder}"), tmp_path)
    assert cfg.optim.lr == cfg.model.recommended.lr.full  # the config's own learning rate, as a user gets it
    results = run(cfg)
    assert results["model"]["name"] == name and results["model"]["pretrained"] == str(folder)
    assert results["model_selection"]["steps_run"] == 2
    assert list(results["accuracy"]) == ["en", "de", "fr", "es", "ru", "zh", "ar"]
    assert set(results["n_examples"].values()) == {8}
    # The encoder came from the checkpoint file (transformers would silently initialise what it fails to load):
    # the input embeddings, frozen in training, are the file's, bit for bit.
    state = lightning_state(tmp_path)
    [key] = [k for k in state if k.endswith("." + EMBEDDINGS[model_type])]
    assert torch.equal(state[key], weights_file(folder)[EMBEDDINGS[model_type]])


@pytest.mark.parametrize("model_type", list(CLASSES))
def test_each_family_loads_its_classifier_class(model_type, tiny_dirs):
    from xrobust.models.loading import load_classifier

    folder = tiny_dirs[next(key for key in tiny_dirs if key[0] == model_type)]
    model = load_classifier(
        folder, 3, attn_implementation="eager" if model_type == "deberta-v2" else "sdpa", task_kind="pair"
    )
    assert type(model).__name__ == CLASSES[model_type]


def test_lora_on_mdeberta_keeps_every_pretrained_weight_of_the_bin_checkpoint(tiny_dirs, tmp_path):
    folder = tiny_dirs[("deberta-v2", False)]
    overrides = tiny_run(tmp_path, "model=mdeberta-v3-base", f"model.pretrained={folder}", "finetune=lora")
    cfg = compose_config(overrides, tmp_path)
    assert cfg.optim.lr == cfg.model.recommended.lr.lora
    results = run(cfg)
    assert 0 < results["model"]["trainable_parameters"] < results["model"]["num_parameters"]
    state = lightning_state(tmp_path)
    assert any(".lora_B." in k for k in state) and any("pooler.modules_to_save." in k for k in state)
    # peft wraps each targeted linear layer (its original weight under `.base_layer`); those stay frozen.
    frozen = {k.removeprefix("model.base_model.model.").replace(".base_layer.", "."): v for k, v in state.items()}
    encoder = {k: v for k, v in weights_file(folder).items() if k.startswith("deberta.")}
    assert len(encoder) > 20 and all(torch.equal(frozen[k], v) for k, v in encoder.items())


def test_mt0_multiple_choice_trains_on_xcopa(tiny_dirs, tmp_path):
    """XCOPA through mT0's encoder scoring each (premise + prompt, choice) pair: EncoderMultipleChoice."""
    data = tmp_path / "xcopa"
    data.mkdir()
    items = [
        {"premise": f"The man opened door {i}.", "choice1": "The room got cold.", "choice2": "He sang a song."}
        | {"question": ("cause", "effect")[i % 2], "label": i % 2, "idx": i}
        for i in range(16)
    ]
    (data / "train-en-from-et.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    for lang in XCOPA_LANGS:
        (data / f"test-{lang}.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items[:4]))
    folder = tiny_dirs[("mt5", True)]
    cfg = compose_config(
        tiny_run(tmp_path, "model=mt0-large", f"model.pretrained={folder}", "task=xcopa", f"data.local_dir={data}"),
        tmp_path,
    )
    results = run(cfg)
    assert results["task_kind"] == "multiple_choice" and list(results["accuracy"]) == XCOPA_LANGS
    assert set(results["n_examples"].values()) == {4} and results["model_selection"]["steps_run"] == 2
    state = lightning_state(tmp_path)
    assert state["model.scorer.classifier.weight"].shape == (1, 32)  # one score per (context, choice) pair
    assert torch.equal(state["model.scorer.encoder.shared.weight"], weights_file(folder)["shared.weight"])


def test_a_tiny_checkpoint_under_a_large_models_config_is_refused_naming_the_override(tiny_dirs, tmp_path):
    """model.architecture is checked against the checkpoint: a run never trains another model than its config
    (and the planner) describes; the one-line error says how to load it anyway."""
    folder = tiny_dirs[("xlm-roberta", True)]
    overrides = [o for o in tiny_run(tmp_path, "model=xlmr-large") if o != "model.architecture=null"]
    with pytest.raises(XrobustError, match=r"hidden_size=1024.* 32: another model\? model.architecture=null"):
        run(compose_config([*overrides, f"model.pretrained={folder}"], tmp_path))


def test_the_sentencepiece_only_tokenizer_loads_and_its_packages_are_dependencies(tiny_dirs):
    """mDeBERTa's repo has spm.model and no tokenizer.json: transformers converts it with sentencepiece and
    protobuf, so without them (the defect) AutoTokenizer fell back to tiktoken and raised."""
    folder = tiny_dirs[("deberta-v2", False)]
    assert not (folder / "tokenizer.json").exists()
    tokenizer = load_tokenizer(folder)
    encoded = tokenizer("The bakery opens early.", "Die Bäckerei öffnet früh.")
    pieces = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert pieces[0] == "[CLS]" and pieces.count("[SEP]") == 2 and "▁bakery" in pieces
    dependencies = re.search(r"^dependencies = \[(.*?)^\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    names = set(re.findall(r'^\s*"([A-Za-z0-9_.-]+)', dependencies.group(1), re.M))
    assert {"sentencepiece", "protobuf"} <= names


def test_without_sentencepiece_the_tokenizer_error_names_the_packages(tiny_dirs, tmp_path):
    folder = tiny_dirs[("deberta-v2", False)]
    script = (
        "import sys; sys.modules['sentencepiece'] = None\n"
        "from xrobust.models.hub import load_tokenizer\n"
        f"load_tokenizer({str(folder)!r})\n"
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode != 0
    assert "XrobustError" in proc.stderr and "needs sentencepiece to read" in proc.stderr
    assert "pip install sentencepiece" in proc.stderr


def test_an_uncached_hub_model_offline_is_one_line_naming_the_id_and_the_fixes(tmp_path):
    overrides = ["model=xlmr-base", "model.pretrained=FacebookAI/no-such-model-xrobust", "logger=none"]
    proc = run_cli([*overrides, f"hydra.run.dir={tmp_path}"], cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    [error] = [line for line in proc.stderr.splitlines() if line.startswith("xrobust: error:")]
    assert error.startswith("xrobust: error: could not load model FacebookAI/no-such-model-xrobust from the Hub")
    assert "unset HF_HUB_OFFLINE" in error and "model.pretrained=<local folder" in error


@pytest.mark.parametrize(
    ("pretrained", "raised", "fix"),
    [
        ("bad//id", None, "namespace/"),
        ("google/gated-model", "gated", "accept its terms on https://huggingface.co/google/gated-model"),
    ],
)
def test_a_malformed_or_gated_hub_id_gets_its_own_fix(pretrained, raised, fix):
    """The malformed id fails inside transformers for real; a gated repo needs the network, so its error is
    the one transformers raises (an OSError from huggingface_hub's GatedRepoError)."""
    with pytest.raises(XrobustError, match=f"could not load model {pretrained} from the Hub") as failure:
        with hub_errors(pretrained):
            if raised is None:
                load_config(pretrained)
            else:
                response = httpx.Response(403, request=httpx.Request("GET", f"https://huggingface.co/{pretrained}"))
                gated = GatedRepoError("Access to this model is restricted.", response=response)
                raise OSError("You are trying to access a gated repo.") from gated
    assert fix in str(failure.value) and "\n" not in str(failure.value)


def test_a_broken_local_checkpoint_names_the_folder(tiny_dirs, tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    source = tiny_dirs[("xlm-roberta", True)]
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    from xrobust.models.loading import load_classifier

    with pytest.raises(XrobustError, match=rf"model.pretrained='{folder}': cannot load it: .*pytorch_model.bin"):
        load_classifier(folder, 3, task_kind="pair")
