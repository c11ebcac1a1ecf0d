"""Causal LM path on tiny locally built models: encoding, instruction training, registration, reload, generation."""

import hashlib
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from models_registry.training import (
    IGNORE_INDEX,
    BaseModelSource,
    TrainingRow,
    TrainingSpec,
    build_tiny_causal_model,
    causal_prompt_ids,
    encode_causal,
    evaluate_causal,
    format_instruction_prompt,
    generate_text,
    load_trained,
    plan_data,
    read_manifest,
    run_training,
    tokenize_instructions,
    verify_model_version,
)
from models_registry.training.synthetic import synthetic_instruction_rows

torch.set_num_threads(1)


def corpus_of(rows):
    return [
        format_instruction_prompt(r.fields["prompt"], r.fields.get("context")) + r.fields["response"]
        for r in rows
    ]


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    root = tmp_path_factory.mktemp("causal")
    rows = synthetic_instruction_rows(64, seed=2)
    base_dir = build_tiny_causal_model(root / "base", corpus_of(rows), vocab_size=300, arch="llama")
    spec = TrainingSpec(
        task="instruction",
        base=BaseModelSource("path", str(base_dir)),
        epochs=3,
        batch_size=8,
        learning_rate=1e-2,
        eval_fraction=0.25,
        max_seq_length=64,
    )
    result = run_training(spec, rows, root / "work", dataset_versions={"datanet:fr": "v3"})
    return SimpleNamespace(rows=rows, spec=spec, base_dir=base_dir, result=result)


def test_instruction_training_lowers_response_loss(llama):
    metrics, base = llama.result.metrics, llama.result.base_metrics
    assert metrics["loss"] < base["loss"]
    assert metrics["perplexity"] < base["perplexity"]
    assert metrics["n_examples"] == base["n_examples"] == 16  # ceil(64 * 0.25)


def test_registered_model_verifies_and_records_its_rows(llama):
    report = verify_model_version(llama.result.model_dir)
    assert report.ok and report.recorded_id == llama.result.model_version_id
    content = read_manifest(llama.result.model_dir)["content"]
    plan = plan_data(llama.spec, llama.rows)
    assert content["data"]["train_row_ids"] == [r.row_id for r in plan.train_rows]
    assert content["data"]["epoch_row_ids"] == plan.used_row_ids_per_epoch(plan.total_steps)
    assert content["lora"]["target_modules"] == ["q_proj", "v_proj"]
    assert content["base_model"]["model_type"] == "llama"
    assert content["dataset_versions"] == {"datanet:fr": "v3"}


def test_reloaded_model_reproduces_eval_loss_and_generates(llama):
    loaded = load_trained(llama.result.model_dir)
    plan = plan_data(llama.spec, llama.rows)
    examples = tokenize_instructions(
        loaded.tokenizer,
        [r.fields["prompt"] for r in plan.eval_rows],
        [r.fields["response"] for r in plan.eval_rows],
        [r.fields.get("context") for r in plan.eval_rows],
        llama.spec.max_seq_length,
    )
    reloaded = evaluate_causal(loaded.model, examples, loaded.tokenizer.pad_token_id)
    assert reloaded["loss"] == pytest.approx(llama.result.metrics["loss"], abs=1e-6)

    text = generate_text(loaded.model, loaded.tokenizer, "Translate to French: red", max_new_tokens=6)
    # Reference: a hand-written greedy loop over the same prompt ids.
    ids = causal_prompt_ids(loaded.tokenizer, format_instruction_prompt("Translate to French: red"))
    assert ids[0] == loaded.tokenizer.bos_token_id
    new_ids = []
    with torch.inference_mode():
        for _ in range(6):
            next_id = int(loaded.model(input_ids=torch.tensor([ids + new_ids])).logits[0, -1].argmax())
            if next_id == loaded.tokenizer.eos_token_id:
                break
            new_ids.append(next_id)
    assert text == loaded.tokenizer.decode(new_ids, skip_special_tokens=True)


def test_encode_causal_masks_prompt_and_padding(llama):
    tokenizer = AutoTokenizer.from_pretrained(llama.base_dir)
    batch = encode_causal(
        tokenizer, ["Translate to French: red", "Say"], ["rouge", "a much longer answer"], None, 64
    )
    for i, (prompt, response) in enumerate(
        [("Translate to French: red", "rouge"), ("Say", "a much longer answer")]
    ):
        prefix = causal_prompt_ids(tokenizer, format_instruction_prompt(prompt))
        answer = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        length = len(prefix) + len(answer)
        assert batch["input_ids"][i, :length].tolist() == prefix + answer
        assert batch["labels"][i, :length].tolist() == [IGNORE_INDEX] * len(prefix) + answer
        assert batch["attention_mask"][i].tolist() == [1] * length + [0] * (
            batch["input_ids"].shape[1] - length
        )
        assert set(batch["labels"][i, length:].tolist()) <= {IGNORE_INDEX}
        assert set(batch["input_ids"][i, length:].tolist()) <= {tokenizer.pad_token_id}


def test_truncation_keeps_prompt_end_and_response_start(llama):
    tokenizer = AutoTokenizer.from_pretrained(llama.base_dir)
    (example,) = tokenize_instructions(tokenizer, ["word " * 200], ["answer " * 200], ["ctx"], 40)
    assert len(example.input_ids) == 40
    assert example.input_ids[0] == tokenizer.bos_token_id
    n_prompt = sum(label == IGNORE_INDEX for label in example.labels)
    assert n_prompt == 40 - 20  # the response keeps half the budget, the prompt the rest (BOS included)
    prompt_tail = tokenizer(format_instruction_prompt("word " * 200, "ctx"), add_special_tokens=False)[
        "input_ids"
    ]
    assert list(example.input_ids[1:n_prompt]) == prompt_tail[-(n_prompt - 1) :]


def test_chat_template_renders_the_instruction_format(llama):
    tokenizer = AutoTokenizer.from_pretrained(llama.base_dir)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Translate to French: red"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == format_instruction_prompt("Translate to French: red")


def test_tiny_causal_builder_is_deterministic(tmp_path):
    corpus = corpus_of(synthetic_instruction_rows(20))

    def file_hashes(path):
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}

    a = build_tiny_causal_model(tmp_path / "a", corpus, vocab_size=280, arch="gpt2", seed=5)
    b = build_tiny_causal_model(tmp_path / "b", corpus, vocab_size=280, arch="gpt2", seed=5)
    assert file_hashes(a) == file_hashes(b)
    model = AutoModelForCausalLM.from_pretrained(a)
    assert model.config.model_type == "gpt2"


def test_gpt2_plain_text_task_trains_with_default_targets(tmp_path):
    texts = [
        f"the {c} fox jumps over {n} lazy dogs" for c in ("red", "brown", "grey") for n in ("two", "six")
    ]
    rows = [TrainingRow(f"t{i}", "contributor-a", {"text": t}) for i, t in enumerate(texts * 2)]
    base_dir = build_tiny_causal_model(tmp_path / "base", texts, vocab_size=280, arch="gpt2")
    spec = TrainingSpec(
        task="text", base=BaseModelSource("path", str(base_dir)), batch_size=2, max_steps=3, eval_fraction=0.2
    )
    result = run_training(spec, rows, tmp_path / "work")
    manifest = read_manifest(result.model_dir)
    assert manifest["content"]["lora"]["target_modules"] == ["c_attn"]
    assert manifest["content"]["training"]["total_steps"] == 3
    # max_steps stops inside the first epoch: only the rows actually used are recorded.
    assert [len(ids) for ids in result.epoch_row_ids] == [3 * 2]
    assert result.metrics["perplexity"] > 0
