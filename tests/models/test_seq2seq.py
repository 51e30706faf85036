"""The text-to-text head (`model.head=seq2seq`) on a tiny random mT5 in the Hub layout: rank classification equals
the label strings' log-likelihoods computed by hand, fine-tuning through the CLI, multiple choice, a noise method
on the encoder's input embeddings, 2 ranks on CPU (DDP, and FSDP2 loading on rank 0 only), and the error lines."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import ROOT, compose_config, run_cli
from helpers.small_runs import LANGUAGES, ODD_TEST_SIZE, overrides, small_sample
from helpers.tiny_models import tiny_checkpoint
from test_sharded import CPU_RANKS, DDP, FSDP2, job, predictions, train

from xrobust.config.checks import validate
from xrobust.data.sources import make_source
from xrobust.data.task import TaskSpec
from xrobust.errors import XrobustError
from xrobust.kinds.base import CandidateCollator
from xrobust.lightning.sharding import tied_group
from xrobust.models.hub import load_tokenizer
from xrobust.models.loading import load_classifier
from xrobust.models.meta_classifier import load_meta_classifier
from xrobust.models.parameter_counts import count_parameters
from xrobust.models.seq2seq import RankClassifier
from xrobust.train import run

SEQ2SEQ = ["model.head=seq2seq"]
XCOPA_LANGS = ["et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh"]


@pytest.fixture(scope="module")
def tiny_mt5(tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "mt5", "mt5")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return small_sample(tmp_path_factory.mktemp("small-sample"))


def encoded_batch(task: TaskSpec, tokenizer, rows) -> dict[str, torch.Tensor]:
    """Rows through the kind's text-to-text encoding and collator, as the datamodule batches them."""
    encoded = task.task_kind.encode_text_to_text(rows[:], tokenizer, task, 256)
    keys = ("input_ids", "attention_mask", "choice_ids", "labels")
    features = [dict(zip(keys, values, strict=True)) for values in zip(*(encoded[k] for k in keys), strict=True)]
    return CandidateCollator(tokenizer)(features)


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_rank_classification_is_the_argmax_of_the_label_strings_log_likelihoods(tiny_mt5):
    """logits[b, c] = log p(verbalizer c | input b), summed over its tokens with EOS: one forward per label with
    `labels=` on the plain MT5ForConditionalGeneration gives the same numbers; the loss is that model's own
    teacher-forced loss on the gold label strings (T5 fine-tuning)."""
    from transformers import MT5ForConditionalGeneration

    task = TaskSpec.from_config(compose_config(["task=sample", *SEQ2SEQ]).task)
    tokenizer = load_tokenizer(tiny_mt5)
    rows = make_source(task, None).load("test", "de").select(range(6))
    batch = encoded_batch(task, tokenizer, rows)
    prompts = [f"xnli: premise: {row['premise']} hypothesis: {row['hypothesis']}" for row in rows]
    real = batch["attention_mask"].bool()
    assert all(batch["input_ids"][b][real[b]].tolist() == tokenizer(p).input_ids for b, p in enumerate(prompts))

    head = load_classifier(tiny_mt5, 3, head="seq2seq", task_kind="pair").eval()
    assert isinstance(head, RankClassifier)
    with torch.no_grad():
        out = head(**batch)
    lm = MT5ForConditionalGeneration.from_pretrained(tiny_mt5).eval()
    by_hand = torch.zeros(len(rows), 3)
    with torch.no_grad():
        for c, label in enumerate(["0", "1", "2"]):  # mT5's XNLI targets: the label index as a string
            target = tokenizer(text_target=[label], return_tensors="pt").input_ids
            assert target[0, -1] == tokenizer.eos_token_id
            for b, prompt in enumerate(prompts):
                single = lm(input_ids=tokenizer([prompt], return_tensors="pt").input_ids, labels=target)
                by_hand[b, c] = -single.loss * target.shape[1]
        gold = tokenizer(text_target=[str(int(y)) for y in batch["labels"]], padding=True, return_tensors="pt")
        gold = gold.input_ids.masked_fill(gold.attention_mask == 0, -100)
        reference = lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=gold).loss
    assert torch.allclose(out.logits, by_hand, atol=1e-4)
    assert torch.equal(out.logits.argmax(dim=-1), by_hand.argmax(dim=-1))
    assert torch.allclose(out.loss, reference, atol=1e-5)


def test_a_fine_tuning_run_through_the_cli(tiny_mt5, small_data, tmp_path):
    """`python -m xrobust.train ... model.head=seq2seq`: the loss falls, every language is tested, results.json and
    predictions.tsv are written, the trained weights are the whole LM (decoder and LM head included)."""
    args = overrides(tiny_mt5, small_data, *SEQ2SEQ, "logger=csv", "optim.lr=3e-3", "optim.warmup_ratio=0")
    args += ["trainer.max_steps=8", "trainer.log_every_n_steps=1", "checkpoint.keep_after_success=all"]
    proc = run_cli([*args, f"hydra.run.dir={tmp_path}"], cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "csv" / "metrics.csv") as handle:
        losses = [float(row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]
    assert len(losses) == 8 and sum(losses[-2:]) < 0.5 * sum(losses[:2]), losses
    results = results_of(tmp_path)
    assert list(results["accuracy"]) == LANGUAGES
    assert set(results["n_examples"].values()) == {ODD_TEST_SIZE}
    rows = (tmp_path / "predictions.tsv").read_text().splitlines()
    assert len(rows) == 1 + ODD_TEST_SIZE * len(LANGUAGES)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert {"model.model.lm_head.weight", "model.model.decoder.final_layer_norm.weight"} <= set(state)


def test_multiple_choice_ranks_each_items_own_choices(tiny_mt5, small_data, tmp_path):
    """XCOPA: the template formats the premise and question, the candidates are the row's two choices; after an
    intermediate XNLI stage, which hands the whole LM on (decoder and LM head included)."""
    data = tmp_path / "xcopa"
    data.mkdir()
    items = [
        {"premise": f"The man opened door {i}.", "choice1": "The room got cold.", "choice2": f"He sang song {i}."}
        | {"question": ("cause", "effect")[i % 2], "label": i % 2, "idx": i}
        for i in range(16)
    ]
    (data / "train-en-from-et.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    for lang in XCOPA_LANGS:
        (data / f"test-{lang}.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items[:4]))

    cfg = compose_config(["task=xcopa", *SEQ2SEQ], tmp_path)
    task, tokenizer = TaskSpec.from_config(cfg.task), load_tokenizer(tiny_mt5)
    batch = encoded_batch(task, tokenizer, make_source(task, str(data)).load("test", "it"))
    assert batch["choice_ids"].shape[:2] == (4, 2)
    prompt = tokenizer("copa premise: The man opened door 1. question: effect").input_ids
    assert batch["input_ids"][1][batch["attention_mask"][1].bool()].tolist() == prompt
    choice = batch["choice_ids"][3, 1][batch["choice_mask"][3, 1].bool()].tolist()
    assert choice == tokenizer(text_target="He sang song 3.").input_ids

    args = overrides(tiny_mt5, data, *SEQ2SEQ, "trainer.max_steps=2", f"paths.cache_dir={tmp_path / 'cache'}")
    args = [a for a in args if not a.startswith("task=")] + ["task=xcopa", "intermediate=xnli"]
    args += [f"intermediate.data.local_dir={small_data}", "+intermediate.trainer.max_steps=2"]
    run(compose_config(args, tmp_path))
    results = results_of(tmp_path)
    assert results["task_kind"] == "multiple_choice" and list(results["accuracy"]) == XCOPA_LANGS
    assert set(results["n_examples"].values()) == {4} and results["model_selection"]["steps_run"] == 2
    assert results["stages"][0]["steps_run"] == 2
    handed_on = json.loads((tmp_path / "stages" / "xnli" / "encoder" / "config.json").read_text())
    assert handed_on["architectures"] == ["MT5ForConditionalGeneration"]


def test_random_perturbation_moves_the_encoders_input_embeddings(tiny_mt5, small_data, tmp_path):
    """noise=rs_rp trains the seq2seq head through `inputs_embeds` of its encoder, and the perturbed test reads
    it the same way; with eps=0 the noisy loss is the clean one, with eps>0 it is not."""
    from hydra.utils import instantiate

    cfg = compose_config(["noise=rs_rp", *SEQ2SEQ])
    task = TaskSpec.from_config(cfg.task)
    tokenizer = load_tokenizer(tiny_mt5)
    batch = encoded_batch(task, tokenizer, make_source(task, None).load("test", "fr").select(range(4)))
    model = load_classifier(tiny_mt5, 3, head="seq2seq", task_kind="pair").eval()
    clean = model(**batch).loss
    for eps, same in [(0.0, True), (0.5, False)]:
        noise = instantiate(cfg.noise, eps=eps, _partial_=True)()
        noise.setup(model, tokenizer)
        assert torch.isclose(noise.training_loss(model, batch), clean).item() is same

    args = overrides(tiny_mt5, small_data, *SEQ2SEQ, "noise=rs_rp", "eval.perturbed=true", "trainer.max_steps=2")
    run(compose_config([*args, f"paths.cache_dir={tmp_path / 'cache'}"], tmp_path))
    results = results_of(tmp_path)
    assert results["noise"]["name"] == "rs_rp" and results["model_selection"]["steps_run"] == 2
    assert set(results["perturbed_accuracy"]) == set(LANGUAGES)


def test_two_ddp_ranks_count_every_test_item_once(tiny_mt5, small_data, tmp_path):
    """DDP x2 on CPU (gloo): 7 items per language, so the sampler pads one rank's share with a repeat."""
    results = train(job(tiny_mt5, small_data, tmp_path, *DDP, *SEQ2SEQ, "trainer.max_steps=2"), tmp_path / "ddp.log")
    assert results["model_selection"]["steps_run"] == 2
    assert results["n_examples"] == {lang: ODD_TEST_SIZE for lang in LANGUAGES}
    ids = [tuple(row.split("\t")[:2]) for row in predictions(tmp_path)[1:]]
    assert len(ids) == len(set(ids)) == ODD_TEST_SIZE * len(LANGUAGES)


def test_fsdp2_loads_on_rank_zero_and_predicts_as_one_process(tiny_mt5, small_data, tmp_path):
    """FSDP2 x2: rank 1 builds the encoder-decoder on the meta device and receives rank 0's weights (the decoder's
    embed_tokens tied to `shared`, one FSDP group); untrained, it predicts every item as one process does."""
    sharded = train(
        job(tiny_mt5, small_data, tmp_path / "a", *FSDP2, *SEQ2SEQ, "trainer.max_steps=0"), tmp_path / "a.log"
    )
    assert "rank 1 builds the model on the meta device" in (tmp_path / "a.log").read_text()
    one = [a for a in CPU_RANKS if not a.startswith("trainer.devices")] + ["trainer.devices=1"]
    single = train(job(tiny_mt5, small_data, tmp_path / "b", *one, *SEQ2SEQ, "trainer.max_steps=0"), tmp_path / "b.log")
    assert sharded["n_examples"] == single["n_examples"] == {lang: ODD_TEST_SIZE for lang in LANGUAGES}
    assert sorted(predictions(tmp_path / "a")) == sorted(predictions(tmp_path / "b"))


def test_the_meta_skeleton_of_a_rank_above_zero_matches_the_loaded_lm(tiny_mt5):
    """The skeleton rank 1 builds before sharding holds the same parameters as rank 0's loaded LM: mT0's own LM
    head apart from `shared` (transformers 5 would tie it), the decoder's embed_tokens tied to it, one FSDP group."""
    loaded = load_classifier(tiny_mt5, 3, head="seq2seq", task_kind="pair")
    meta = load_meta_classifier(tiny_mt5, 3, head="seq2seq", task_kind="pair")
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in loaded.state_dict().items()}
    assert count_parameters(meta) == count_parameters(loaded)
    embeddings = meta.get_input_embeddings()
    assert torch.equal(embeddings.weight, loaded.get_input_embeddings().weight)
    assert all(p.is_meta for p in meta.parameters() if p is not embeddings.weight)
    lm = meta.model
    assert lm.lm_head.weight is not embeddings.weight
    assert tied_group(meta, embeddings) == [embeddings, lm.encoder.embed_tokens, lm.decoder.embed_tokens]


def test_an_encoder_only_model_is_refused_in_one_line(tmp_path):
    proc = run_cli(["model=me5-small", *SEQ2SEQ, "logger=none", f"hydra.run.dir={tmp_path}"], cwd=ROOT)
    assert proc.returncode == 2
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("xrobust:")]
    assert line.startswith("xrobust: error: model.head=seq2seq needs an encoder-decoder") and "bert" in line


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("task.template=xp3", r"task.template='xp3' names no entry of task.templates \(it has: mt5\)"),
        ("task.verbalizer=[yes,no]", r"task.verbalizer has 2 strings, the task 3 labels"),
        ("+task.templates.mt5.verbalizer=[a,a,b]", r"task.templates.mt5.verbalizer=\['a', 'a', 'b'\] must hold"),
        ("+task.templates.mine.input='{premise} {context}'", r"names \{context\}, not a field of the task's rows"),
        ("+task.templates.mine.inputs=x", r"task.templates.mine has unknown key\(s\) \['inputs'\]"),
        ("model.head=decoder", r"model.head='decoder' \(must be one of classifier, seq2seq\)"),
    ],
)
def test_bad_templates_and_verbalizers_are_one_line(override, message, tmp_path):
    with pytest.raises(XrobustError, match=message):
        validate(compose_config([*SEQ2SEQ, override], tmp_path))


def test_a_multiple_choice_task_takes_no_verbalizer(tmp_path):
    with pytest.raises(XrobustError, match=r"task.verbalizer must be null: a multiple-choice task scores the text"):
        validate(compose_config(["task=xcopa", "task.verbalizer=[first,second]"], tmp_path))
