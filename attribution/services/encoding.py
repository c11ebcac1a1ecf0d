"""Encoding rows and queries exactly as training encoded them: the model version's training rows in the
order its manifest records (`training_row_ids`), batches of rows (`training_batch`: training's own
`models_registry.training.encode_batch`, fed the task, labels and sequence length the manifest records)
and one inference as a labelled example whose own output is the label that is attributed
(`_encode_query`). The tokenizers are `models_registry.training`'s, imported on first use (they load
transformers).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError


def training_row_ids(data: dict) -> list[str]:
    """The last epoch's order, then any row only earlier epochs used (a run cut short by max_steps)."""
    epochs = data.get("epoch_row_ids") or []
    ordered = list(epochs[-1]) if epochs else list(data.get("train_row_ids", []))
    seen = set(ordered)
    for epoch in epochs[:-1]:
        for row_id in epoch:
            if row_id not in seen:
                seen.add(row_id)
                ordered.append(row_id)
    return ordered


def training_batch(*, content: dict, tokenizer, fields: list[dict]) -> dict:
    """One batch of a model version's rows for its index, encoded by training's own function with the task,
    labels and sequence length its manifest (`content`) records, so the index sees what training saw."""
    from models_registry.training import encode_batch

    return encode_batch(tokenizer, content["task"], fields, content.get("label_names") or [],
                        int(content["hyperparameters"]["max_seq_length"]))


def _encode_query(*, task: str, tokenizer, input_text: str, output: str, label_names, max_len: int) -> dict:
    """One inference as a labelled example: its own output is the label whose gradient is scored."""
    from models_registry.training import (
        IGNORE_INDEX,
        EncodedExample,
        causal_prompt_ids,
        pad_batch,
        tokenize_classification,
        tokenize_instructions,
    )

    if task == "text-classification":
        if output not in label_names:
            raise ValidationError({"output": f"'{output}' is not one of this model's labels ({', '.join(label_names)})."})
        examples = tokenize_classification(tokenizer, [input_text], [list(label_names).index(output)], max_len)
    elif task == "instruction":
        examples = tokenize_instructions(tokenizer, [input_text], [output], None, max_len)
    else:  # plain text: the prompt conditions, the continuation is what is attributed
        prompt = causal_prompt_ids(tokenizer, input_text)
        response = tokenizer(output, add_special_tokens=False)["input_ids"]
        keep = min(len(response), max(max_len - len(prompt), max_len // 2))
        prompt = prompt[max(len(prompt) - (max_len - keep), 0):] if max_len - keep > 0 else []
        examples = [EncodedExample(tuple(prompt + response[:keep]), (IGNORE_INDEX,) * len(prompt) + tuple(response[:keep]))]
    if task != "text-classification" and not any(label != IGNORE_INDEX for label in examples[0].labels):
        raise ValidationError({"output": "The output is empty: there is nothing to attribute."})
    return pad_batch(examples, tokenizer.pad_token_id)
