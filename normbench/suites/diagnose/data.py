"""Seeded synthetic language: a random first-order Markov chain over a small vocabulary.

Every token has 4 successors drawn at random, taken with probabilities 0.4 / 0.3 / 0.2 / 0.1, so
the best possible loss is the entropy of that distribution, 1.2799 nats, whatever the chain; an
untrained model starts near ln(vocab) = 4.16. Nothing is downloaded, and the same seed gives the
same tokens on every device (sampling runs on a CPU generator; batches are moved afterwards).
"""

from __future__ import annotations

import math

import torch

SUCCESSOR_PROBS = (0.4, 0.3, 0.2, 0.1)


class MarkovChain:
    """A random chain: `successors[t]` are the tokens that may follow t, in probability order.

    `seed` fixes the chain (the language); `stream` picks an independent sequence of batches from
    it, so a held-out batch or a resumed run sees the same language but new samples.
    """

    def __init__(
        self, vocab: int = 64, seed: int = 0, stream: int = 0, n_successors: int = 4
    ) -> None:
        if n_successors != len(SUCCESSOR_PROBS):
            raise ValueError(f"n_successors must be {len(SUCCESSOR_PROBS)}")
        self.vocab = vocab
        gen = torch.Generator().manual_seed(seed)
        self.successors = torch.stack(
            [torch.randperm(vocab, generator=gen)[:n_successors] for _ in range(vocab)]
        )
        self.probs = torch.tensor(SUCCESSOR_PROBS)
        self._gen = torch.Generator().manual_seed(seed * 1_000_003 + stream + 1)

    @property
    def loss_floor(self) -> float:
        """Cross-entropy of a perfect model, in nats (the entropy of the successor distribution)."""
        return -sum(p * math.log(p) for p in SUCCESSOR_PROBS)

    def sample(self, batch: int, seq: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """A (batch, seq + 1) int64 tensor: inputs are [:, :-1], next-token targets are [:, 1:]."""
        tokens = torch.empty(batch, seq + 1, dtype=torch.long)
        tokens[:, 0] = torch.randint(self.vocab, (batch,), generator=self._gen)
        choice = torch.multinomial(
            self.probs.expand(batch * seq, -1), 1, replacement=True, generator=self._gen
        ).view(batch, seq)
        for t in range(seq):
            tokens[:, t + 1] = self.successors[tokens[:, t], choice[:, t]]
        return tokens.to(device)


def split(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets of a sampled batch."""
    return tokens[:, :-1], tokens[:, 1:]
