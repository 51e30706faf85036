"""Scaling: shipped architectures, the encoder head, LoRA, the planner's counts and verdicts, the launcher
(multi-rank runs: test_distributed.py)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest
import torch
from helpers import CONF_DIR, FAST, compose_config
from hydra.utils import instantiate

from xrobust.errors import XrobustError
from xrobust.models.loading import load_classifier, load_config, transformer_layer_classes
from xrobust.plan import inventory, plan_from_config, recommended_overrides, seq2seq_parameters, setup_from_config

LARGE_MODELS = ["xlmr-base", "xlmr-large", "xlmr-xl", "xlmr-xxl", "mdeberta-v3-base", "mt0-large", "mt0-xl", "mt0-xxl"]


def plan_for(overrides: list[str]):
    return plan_from_config(compose_config(overrides))


def count(model: str, *extra: str):
    return inventory(setup_from_config(compose_config([f"model={model}", *extra])))


# Published sizes. XLM-R: the model cards / Goyal et al. 2021 (base 278M as counted by transformers, large 560M,
# XL 3.5B, XXL 10.7B); mDeBERTa-v3-base: 86M backbone + 190M embeddings (transformers counts 278M with the head).
# Our counts include a 3-label classification head.
@pytest.mark.parametrize(
    ("model", "published"),
    [
        ("xlmr-base", 278e6),
        ("xlmr-large", 560e6),
        ("xlmr-xl", 3.5e9),
        ("xlmr-xxl", 10.7e9),
        ("mdeberta-v3-base", 278e6),
    ],
)
def test_encoder_parameter_counts_match_the_published_sizes(model, published):
    total = count(model).total
    assert abs(total - published) / published < 0.01, f"{model}: {total:,} vs {published:,.0f}"


# mT0 published sizes (1.2B / 3.7B / 13B) count the whole encoder-decoder with its untied lm_head. The
# classifier here is the encoder alone (+ head); its counts are checked against the notes' meta-device counts.
@pytest.mark.parametrize(
    ("model", "encoder", "published_seq2seq"),
    [("mt0-large", 0.564e9, 1.2e9), ("mt0-xl", 1.670e9, 3.7e9), ("mt0-xxl", 5.655e9, 13e9)],
)
def test_mt0_counts_encoder_only_and_the_full_checkpoint(model, encoder, published_seq2seq):
    inv = count(model)
    assert inv.encoder_only_of == "mt5" and inv.model_class.startswith("EncoderClassifier")
    assert abs(inv.total - encoder) / encoder < 0.01
    full = seq2seq_parameters(f"xrobust/models/architectures/{model}.json")
    digits = 2  # the published figures have two significant digits
    scale = 10 ** (math.floor(math.log10(published_seq2seq)) - digits + 1)
    assert round(full / scale) * scale == pytest.approx(published_seq2seq), f"{model}: {full:,}"


def test_lora_trainable_count_is_the_adapters_plus_the_head():
    inv = count("xlmr-xxl", "finetune=lora")
    h, f, r, layers, labels = 4096, 16384, 16, 48, 3
    # query, key, value, attention output: h -> h; intermediate h -> f; output f -> h; A is r x in, B is out x r.
    per_layer = r * (4 * (h + h) + (h + f) + (f + h))
    head = (h * h + h) + (h * labels + labels)  # XLMRobertaXLClassificationHead: dense + out_proj
    assert inv.trainable == layers * per_layer + head == 73_416_707
    assert inv.trainable / inv.total < 0.01
    full = count("xlmr-xxl")
    assert inv.total == full.total + inv.trainable  # base + adapters + the trained copy of the head


def test_xlmr_xxl_full_fine_tuning_fits_8_gpus_with_fsdp():
    plan = plan_for(["model=xlmr-xxl", "trainer=fsdp", "trainer.devices=8", "data.batch_size=32"])
    assert plan.fits
    P = plan.inv.total
    assert plan.parts["weights"] == pytest.approx(4 * P / 8 / 2**30)  # fp32, one eighth per GPU
    assert plan.parts["optimizer"] == pytest.approx(8 * plan.inv.trainable / 8 / 2**30)
    assert 40 < plan.total_gib < 70
    assert plan.max_batch_size >= 32


def test_xlmr_xxl_full_fine_tuning_does_not_fit_one_gpu_and_the_fix_is_planned():
    plan = plan_for(["model=xlmr-xxl", "trainer=gpu", "data.batch_size=32"])
    assert not plan.fits and plan.total_gib > 150  # 16 B per trainable parameter alone is ~144 GiB
    assert plan.fix is not None
    fixed = plan_for(["model=xlmr-xxl", "trainer=gpu", "data.batch_size=32", *plan.fix["overrides"].split()])
    assert fixed.fits and fixed.total_gib == pytest.approx(plan.fix["total_gib"], abs=0.01)


def test_xlmr_xxl_lora_on_one_gpu_needs_checkpointing_at_batch_32():
    base = ["model=xlmr-xxl", "finetune=lora", "trainer=gpu", "data.batch_size=32"]
    plan = plan_for(base)
    assert not plan.fits
    assert plan.fix["overrides"] == "model.gradient_checkpointing=true"
    fixed = plan_for([*base, "model.gradient_checkpointing=true"])
    assert fixed.fits and fixed.parts["activations"] < plan.parts["activations"] / 5


@pytest.mark.parametrize("model", LARGE_MODELS)
def test_recommended_setups_fit_80gb(model):
    recommended = recommended_overrides(compose_config([f"model={model}"]).model)
    plan = plan_for([f"model={model}", *recommended.split()])
    assert plan.fits, f"{model} {recommended}: {plan.total_gib:.1f} GiB"
    s = plan.setup
    assert s.batch_size * s.accumulate * s.world == 32  # the same effective batch for every size


def test_model_files_set_the_learning_rate_for_the_finetune_method():
    assert compose_config(["model=xlmr-xxl"]).optim.lr == 3e-6
    assert compose_config(["model=xlmr-xxl", "finetune=lora"]).optim.lr == 1e-4
    assert compose_config(["model=xlmr-xxl", "optim.lr=1e-3"]).optim.lr == 1e-3
    assert compose_config([]).optim.lr == 2e-4  # the embedded default is untouched


def test_plan_for_the_embedded_model_reads_the_converted_folder(me5_dir):
    plan = plan_for([])
    assert plan.setup.accelerator == "cpu" and plan.fits
    assert plan.inv.total == 117_654_915 and plan.inv.layers == 12


def test_plan_cli_runs_in_seconds_and_writes_nothing(tmp_path):
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "xrobust.plan", "model=xlmr-xxl", "finetune=full", "trainer=fsdp", "trainer.devices=8"]
        + ["data.batch_size=32", f"plan.json={tmp_path / 'plan.json'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "-> FITS" in proc.stdout and "10,712,748,035 total" in proc.stdout
    summary = json.loads((tmp_path / "plan.json").read_text())
    assert summary["fits"] and summary["parameters"]["total"] == 10_712_748_035
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]  # no outputs/, no log file
    assert elapsed < 120  # a few seconds on an idle machine; imports dominate


def test_fsdp_strategy_wraps_the_transformer_layers():
    from pytorch_lightning.strategies import FSDPStrategy
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    cfg = compose_config(["model=xlmr-xxl", "trainer=fsdp"])
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, FSDPStrategy)
    policy = strategy.kwargs["auto_wrap_policy"]
    assert isinstance(policy, ModuleWrapPolicy)
    assert {c.__name__ for c in policy._module_classes} == {"XLMRobertaXLLayer"}
    assert strategy._activation_checkpointing_kwargs == {}  # off: model.gradient_checkpointing does it
    assert transformer_layer_classes(architecture="xrobust/models/architectures/mt0-xxl.json", enabled=True)


def test_slurm_launcher_composes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_config(["hydra/launcher=slurm", "model=xlmr-xxl", "trainer=fsdp", "trainer.devices=8"], tmp_path)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (1, 8, 8)


# ---------------------------------------------------------------------------------- the mT5 encoder head


@pytest.fixture(scope="module")
def tiny_mt5(tmp_path_factory):
    """A tiny random mT5 encoder-decoder checkpoint, saved as a hub checkpoint would be (safetensors)."""
    from transformers import MT5Config, MT5ForConditionalGeneration

    config = MT5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2, num_heads=4)
    path = tmp_path_factory.mktemp("tiny-mt5")
    MT5ForConditionalGeneration(config).save_pretrained(path)
    return path


def test_mt5_loads_as_an_encoder_classifier_with_hf_outputs(tiny_mt5):
    model = load_classifier(
        tiny_mt5, 3, id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2}, task_kind="pair"
    )
    assert type(model).__name__ == "EncoderClassifier"
    assert not any("decoder" in name for name, _ in model.named_parameters())
    ids = torch.randint(2, 64, (2, 7))
    mask = torch.ones_like(ids)
    mask[1, 4:] = 0
    out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2]), token_type_ids=torch.zeros_like(ids))
    assert out.logits.shape == (2, 3) and out.loss.ndim == 0
    embeds = model.get_input_embeddings()(ids)
    again = model.eval()(inputs_embeds=embeds, attention_mask=mask)
    assert torch.allclose(again.logits, model(input_ids=ids, attention_mask=mask).logits)
    model.train()
    model.gradient_checkpointing_enable()
    out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert model.classifier.weight.grad is not None


def test_mt5_multiple_choice_scores_each_choice_and_hands_on_its_encoder(tiny_mt5, tmp_path):
    from xrobust.models.export import export_encoder

    model = load_classifier(tiny_mt5, 2, task_kind="multiple_choice")
    assert type(model).__name__ == "EncoderMultipleChoice"
    ids = torch.randint(2, 64, (3, 2, 5))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 1]))
    assert out.logits.shape == (3, 2) and out.loss.ndim == 0
    # Choice j of example i is scored alone: its logit is the scorer's output on that (context, choice) row.
    model.eval()
    alone = model.scorer(input_ids=ids[1], attention_mask=torch.ones_like(ids[1])).logits.squeeze(-1)
    assert torch.allclose(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[1], alone, atol=1e-6)
    # The encoder (no head) loads as the next stage's pretrained model, here as a pair classifier.
    folder = export_encoder(model, _NoTokenizer(), tmp_path / "encoder")
    again = load_classifier(folder, 3, task_kind="pair")
    assert torch.equal(again.encoder.shared.weight, model.scorer.encoder.shared.weight)
    assert not torch.equal(again.classifier.weight[:1], model.scorer.classifier.weight)


class _NoTokenizer:
    """The tiny checkpoint has no tokenizer; export_encoder saves whatever tokenizer it is given."""

    def save_pretrained(self, folder):
        return None


def test_mt5_lora_trains_adapters_and_head_only(tiny_mt5):
    lora = compose_config(["finetune=lora"]).finetune
    model = load_classifier(tiny_mt5, 3, finetune=lora, task_kind="pair")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "classifier.modules_to_save" in n for n in trainable)
    assert any("wi_1.lora_A" in n for n in trainable)


def test_a_checkpoint_that_disagrees_with_the_shipped_architecture_is_refused(tiny_mt5):
    with pytest.raises(XrobustError, match="model.architecture"):
        load_classifier(tiny_mt5, 3, architecture="xrobust/models/architectures/mt0-large.json", task_kind="pair")


def test_shipped_architectures_load_without_the_hub():
    for model in LARGE_MODELS:
        config = load_config(architecture=f"xrobust/models/architectures/{model}.json")
        assert config.model_type in ("xlm-roberta", "xlm-roberta-xl", "deberta-v2", "mt5")


# ------------------------------------------------------------------------------------------ real runs


def test_lora_run_trains_only_adapters_and_head(me5_dir, tmp_path):
    from xrobust.models.loading import load_classifier as fresh
    from xrobust.train import run

    # Validation every 2 steps, so a best checkpoint exists and testing reloads it (the LoRA state dict round
    # trip); one small test batch per language: LoRA's extra matmuls make CPU inference slower than full here.
    # checkpoint.keep_after_success=all keeps last.ckpt (with optimizer state) to look into after the run.
    extra = ["finetune=lora", "trainer.val_check_interval=2", "trainer.limit_test_batches=1", "data.eval_batch_size=16"]
    extra.append("checkpoint.keep_after_success=all")
    cfg = compose_config([*FAST, *extra], tmp_path)
    results = run(cfg)
    planned = inventory(setup_from_config(cfg))
    assert results["model"]["trainable_parameters"] == planned.trainable == 1_476_099
    assert results["model"]["num_parameters"] == planned.total
    assert results["model_selection"]["steps_run"] == 4
    assert results["model_selection"]["best_val_acc"] is not None  # trainer.test reloaded the best checkpoint

    # weights_only=True, as Lightning loads: the hyper-parameters must be plain containers, not DictConfigs.
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["finetune"]["method"] == "lora"
    state = checkpoint["state_dict"]
    start = {
        f"model.{k}": v for k, v in fresh(me5_dir, 3, finetune=cfg.finetune, task_kind="pair").state_dict().items()
    }
    state = {k: v for k, v in state.items() if k.startswith("model.")}
    assert state.keys() == start.keys()
    changed = {k for k in state if not torch.equal(state[k], start[k])}
    # LoRA A starts random (differs from a fresh draw anyway), B starts at zero: check B moved.
    assert any(".lora_B." in k for k in changed)
    # Outside the adapters and the trained head copies, only the frozen originals of the randomly initialised
    # classifier differ from a fresh load (another random draw); the pretrained encoder did not move.
    frozen_changed = {k for k in changed if "lora_" not in k and ".modules_to_save." not in k}
    assert frozen_changed <= {k for k in state if "classifier.original_module." in k}
    assert any("classifier.modules_to_save." in k for k in changed)


def test_recorded_training_tokens_are_padded_as_the_run_batches():
    """plan.padding follows data.group_by_length: shuffled batches (the default) pad 1.67x on XNLI, groups 1.02x."""
    from hydra import compose, initialize_config_dir

    from xrobust.plan.data import data_stats

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        shuffled = data_stats(compose("plan", overrides=["task=xnli"]))
        grouped = data_stats(compose("plan", overrides=["task=xnli", "data.group_by_length=true"]))
    assert shuffled.train_tokens / grouped.train_tokens == pytest.approx(1.67 / 1.02)
