"""RNN encoder-decoder with additive attention (Bahdanau, Cho and Bengio, 2015, "Neural Machine
Translation by Jointly Learning to Align and Translate"), run with teacher forcing.

A bidirectional GRU reads the source into annotations h_j = [fwd h_j; bwd h_j]. The decoder starts
from s_0 = tanh(W_s bwd h_1) and is one `scan` over the target: each step scores every annotation
with the alignment model e_ij = v^T tanh(W_a s_{i-1} + U_a h_j), takes the softmax over the source
as the alignment a_ij, forms the context c_i = sum_j a_ij h_j, emits logits through the paper's
maxout deep output over (s_{i-1}, E y_{i-1}, c_i) and updates s_i = GRU([E y_{i-1}; c_i], s_{i-1})
(torch's GRU gate form). U_a h_j does not depend on i, so it is computed once before the loop.
Outputs the logits and the alignments; checked against a plain PyTorch module written from the
paper's equations, with the same weights.
"""

from dataclasses import dataclass

import archir
from archir import nn
from archir.zoo import ZooEntry

ZOO = ZooEntry(name="seq2seq_attention", family="F3 recurrent", factory="seq2seq_attention",
               reference="plain PyTorch from the paper's equations (nn.GRU encoder, GRUCell decoder)",
               sizes=({"B": 2, "S": 7, "T": 5}, {"B": 3, "S": 4, "T": 9}), int_high=40)


@dataclass(frozen=True)
class Seq2SeqConfig:
    src_vocab: int = 40
    tgt_vocab: int = 50
    embed: int = 16
    enc_hidden: int = 16  # per direction: annotations are 2 * enc_hidden wide
    dec_hidden: int = 32
    align: int = 24  # width of the alignment model
    maxout: int = 16  # deep-output units, each the max of a pair


class AdditiveAttention(nn.Module):
    """The alignment model: scores v^T tanh(W_a s + U_a h_j), a softmax over the source positions."""

    def __init__(self, query_dim: int, key_dim: int, dim: int):
        # No biases: one inside tanh would be redundant and v's cancels in the softmax.
        self.query_proj = nn.Linear(query_dim, dim, bias=False)  # W_a
        self.key_proj = nn.Linear(key_dim, dim, bias=False)  # U_a
        self.score = nn.Linear(dim, 1, bias=False)  # v_a
        # Larger than torch's default init, so that even this tiny random model's alignments are
        # far from uniform and vary from step to step: the check then tests the attention.
        for proj in (self.query_proj, self.key_proj, self.score):
            proj.weight.init = ("normal", 0.5)

    def forward(self, query, keys, annotations):
        """query [B, Dq], keys = key_proj(annotations) [B, S, A], annotations [B, S, Dh]
        -> (context [B, Dh], alignment [B, S])."""
        energies = self.score(archir.tanh(keys + self.query_proj(query).unsqueeze(1))).squeeze(-1)
        alignment = energies.softmax(-1)
        context = (alignment.unsqueeze(1) @ annotations).squeeze(1)
        return context, alignment


class Decoder(nn.Module):
    def __init__(self, c: Seq2SeqConfig):
        annotation = 2 * c.enc_hidden
        self.maxout = c.maxout
        self.embed = nn.Embedding(c.tgt_vocab, c.embed)
        self.init_proj = nn.Linear(c.enc_hidden, c.dec_hidden)  # W_s
        self.attention = AdditiveAttention(c.dec_hidden, annotation, c.align)
        self.cell = nn.GRUCell(c.embed + annotation, c.dec_hidden)
        self.readout = nn.Linear(c.dec_hidden + c.embed + annotation, 2 * c.maxout)  # U_o, V_o, C_o
        self.head = nn.Linear(c.maxout, c.tgt_vocab)  # W_o

    def forward(self, tgt, annotations, first_backward):
        s0 = archir.tanh(self.init_proj(first_backward))
        keys = self.attention.key_proj(annotations)  # U_a h_j, once for all steps

        def step(carries, inputs):
            (s,), (y,) = carries, inputs
            context, alignment = self.attention(s, keys, annotations)
            t = self.readout(archir.concat(s, y, context, axis=-1))
            t = t.reshape(-1, self.maxout, 2).max(-1)  # maxout over adjacent pairs
            s_next = self.cell(archir.concat(y, context, axis=-1), s)
            return [s_next], [self.head(t), alignment]

        _, (logits, alignments) = archir.scan(step, [s0], [self.embed(tgt)], axis=1)
        return logits, alignments


@archir.model(src=archir.i64["B", "S"], tgt=archir.i64["B", "T"])
class Seq2SeqAttention(nn.Module):
    def __init__(self, c: Seq2SeqConfig = Seq2SeqConfig()):
        self.config = c
        self.src_embed = nn.Embedding(c.src_vocab, c.embed)
        self.encoder = nn.GRU(c.embed, c.enc_hidden, batch_first=True, bidirectional=True)
        self.decoder = Decoder(c)

    def forward(self, src, tgt):
        """src [B, S], tgt [B, T] (decoder inputs, teacher forced)
        -> (logits [B, T, tgt_vocab], alignments [B, T, S])."""
        annotations, h_n = self.encoder(self.src_embed(src))
        return self.decoder(tgt, annotations, h_n[1])  # h_n[1]: the backward state at position 1


def seq2seq_attention() -> Seq2SeqAttention:
    """A tiny attention encoder-decoder with seeded random weights."""
    return Seq2SeqAttention().init(seed=0)
