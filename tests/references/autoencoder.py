"""Reference for examples/autoencoder.py: torch.nn.Sequential encoder and decoder.

archir's `encoder.fc1` / `encoder.fc2` are entries 0 and 2 of the encoder Sequential (a ReLU
sits between them); the same holds for the decoder.
"""

import numpy as np
import torch
from torch import nn

SEQUENTIAL_INDEX = {"fc1": "0", "fc2": "2"}


def reference(model):
    c = model.config
    encoder = nn.Sequential(nn.Linear(c.features, c.hidden), nn.ReLU(),
                            nn.Linear(c.hidden, c.code), nn.Tanh())
    decoder = nn.Sequential(nn.Linear(c.code, c.hidden), nn.ReLU(),
                            nn.Linear(c.hidden, c.features), nn.Sigmoid())
    net = nn.ModuleDict({"encoder": encoder, "decoder": decoder}).eval()
    state = {}
    for name, value in model.state_dict().items():
        part, layer, param = name.split(".")
        state[f"{part}.{SEQUENTIAL_INDEX[layer]}.{param}"] = torch.from_numpy(value)
    net.load_state_dict(state)

    def run(x: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            code = encoder(torch.from_numpy(x))
            return [decoder(code).numpy(), code.numpy()]

    return run
