"""A small causal Transformer LM with switchable norm placement and type, for the training probes.

Placement:
  post      x = Norm(x + F(x))                  (Vaswani et al. 2017)
  pre       x = x + F(Norm(x)), final Norm       (Xiong et al. 2020)
  deepnorm  x = Norm(alpha * x + F(x)), F's v/out/FFN weights scaled by beta at init
            (Wang et al. 2022, DeepNet; decoder-only: alpha = (2L)^(1/4), beta = (8L)^(-1/4))
  none      x = x + F(x), no norm anywhere
Attention is written out (not scaled_dot_product_attention) so the probes can read the weights and
take second derivatives through it on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from normbench.suites.diagnose.norms import NormPlacement, make_norm, parse_variant


@dataclass(frozen=True)
class ModelConfig:
    vocab: int = 64
    d: int = 64
    heads: int = 4
    ffn_mult: int = 4
    seq: int = 32
    depth: int = 6
    variant: str = "pre-layernorm"

    def __post_init__(self) -> None:
        parse_variant(self.variant)
        if self.d % self.heads:
            raise ValueError(f"d={self.d} must be divisible by heads={self.heads}")
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")


def deepnorm_constants(depth: int) -> tuple[float, float]:
    """(alpha, beta) of DeepNet for a decoder-only stack of `depth` blocks (Wang et al. 2022)."""
    return (2 * depth) ** 0.25, (8 * depth) ** -0.25


class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def scores(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal attention probabilities (B, H, T, T) and the values (B, H, T, dh)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        return logits.masked_fill(mask, float("-inf")).softmax(-1), v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs, v = self.scores(x)
        return self.out((probs @ v).transpose(1, 2).reshape(x.shape))


class FeedForward(nn.Module):
    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, variant: NormPlacement) -> None:
        super().__init__()
        self.placement = variant.placement
        self.attn = CausalSelfAttention(cfg.d, cfg.heads)
        self.ffn = FeedForward(cfg.d, cfg.ffn_mult * cfg.d)
        self.norm1 = make_norm(variant.norm, cfg.d)
        self.norm2 = make_norm(variant.norm, cfg.d)
        self.alpha = deepnorm_constants(cfg.depth)[0] if self.placement == "deepnorm" else 1.0
        # Largest |residual stream| seen while `track` is on (precision probe); off by default
        # because reading it back synchronizes the device.
        self.track = False
        self.peak = 0.0

    def _seen(self, x: torch.Tensor) -> None:
        if self.track:
            self.peak = max(self.peak, float(x.detach().abs().max()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            x = x + self.attn(self.norm1(x))
            x = x + self.ffn(self.norm2(x))
            self._seen(x)
            return x
        if self.placement == "none":
            x = x + self.attn(x)
            x = x + self.ffn(x)
            self._seen(x)
            return x
        # post and deepnorm: normalize the residual sum (alpha = 1 for post)
        s = self.alpha * x + self.attn(x)
        self._seen(s)
        x = self.norm1(s)
        s = self.alpha * x + self.ffn(x)
        self._seen(s)
        return self.norm2(s)


class ToyLM(nn.Module):
    """Token + learned position embedding, `depth` blocks, (final norm for pre), linear head."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.variant = parse_variant(cfg.variant)
        self.tok = nn.Embedding(cfg.vocab, cfg.d)
        self.pos = nn.Embedding(cfg.seq, cfg.d)
        self.blocks = nn.ModuleList(Block(cfg, self.variant) for _ in range(cfg.depth))
        final = self.variant.norm if self.variant.placement == "pre" else None
        self.final_norm = make_norm(final, cfg.d)
        self.head = nn.Linear(cfg.d, cfg.vocab, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Xavier-normal weights, zero biases; DeepNorm's beta gain on v, out and FFN weights.

        q and k keep gain 1 in DeepNet (only the value path feeds the residual magnitude).
        """
        beta = deepnorm_constants(self.cfg.depth)[1] if self.variant.placement == "deepnorm" else 1
        d = self.cfg.d
        for emb in (self.tok, self.pos):
            nn.init.xavier_normal_(emb.weight)
        nn.init.xavier_normal_(self.head.weight)
        for block in self.blocks:
            w = block.attn.qkv.weight
            nn.init.xavier_normal_(w[:d])  # q
            nn.init.xavier_normal_(w[d : 2 * d])  # k
            nn.init.xavier_normal_(w[2 * d :], gain=beta)  # v
            nn.init.xavier_normal_(block.attn.out.weight, gain=beta)
            nn.init.xavier_normal_(block.ffn.fc1.weight, gain=beta)
            nn.init.xavier_normal_(block.ffn.fc2.weight, gain=beta)
            for lin in (block.attn.qkv, block.attn.out, block.ffn.fc1, block.ffn.fc2):
                nn.init.zeros_(lin.bias)

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """The final hidden state (what the head reads), shape (B, T, d)."""
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(idx))

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of a (B, T + 1) batch, in nats (computed in fp32)."""
        logits = self(tokens[:, :-1])
        return F.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1)
        )


def build_model(
    variant: str, depth: int = 6, seed: int = 0, device: str = "cpu", **overrides: int
) -> ToyLM:
    """A freshly initialized ToyLM; the same seed gives the same weights on every device."""
    cfg = ModelConfig(depth=depth, variant=variant, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ToyLM(cfg)
    return model.to(device)
