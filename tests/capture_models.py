"""Small randomly initialised models for the capture tests, no download: a BERT-like Post-LN
block (torch.nn.LayerNorm), a Llama-like Pre-RMSNorm block (a Hugging Face-style
`LlamaRMSNorm`: x * rsqrt(mean(x^2) + eps) * w, x_hat rounded to x's dtype before w) and a
Gemma-style one (`GemmaRMSNorm`: x_hat * (1 + w) in fp32). Each factory returns (module, batch)
as `normbench capture tests/capture_models.py:post_ln` loads it; each block's `trace` recomputes
what its norms saw, step by step, so a test can compare the capture bitwise."""

from __future__ import annotations

import torch
from torch import nn

DIM, VOCAB, SEQ, BATCH = 32, 50, 6, 2


class LlamaRMSNorm(nn.Module):
    """As Hugging Face's LlamaRMSNorm writes it."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


class GemmaRMSNorm(nn.Module):
    """As Hugging Face's GemmaRMSNorm writes it: the weight is stored near 0, applied as 1 + w."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output = self._norm(x.float())
        output = output * (1.0 + self.weight.float())
        return output.type_as(x)


class Mixer(nn.Module):
    """Stands in for attention: a linear map of the tokens, then across the sequence mean."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.proj(h) + h.mean(1, keepdim=True)


class PostLN(nn.Module):
    """BERT-like: h = LN(h + attn(h)); h = LN(h + mlp(h)), two blocks."""

    def __init__(self, dim: int = DIM, blocks: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.attn = nn.ModuleList(Mixer(dim) for _ in range(blocks))
        self.ln1 = nn.ModuleList(nn.LayerNorm(dim, eps=1e-12) for _ in range(blocks))
        self.mlp = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
            for _ in range(blocks)
        )
        self.ln2 = nn.ModuleList(nn.LayerNorm(dim, eps=1e-12) for _ in range(blocks))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.trace(ids)[-1]

    def trace(self, ids: torch.Tensor) -> list[torch.Tensor]:
        """x1, y1, x2, y2 per block (the inputs and outputs of its two norms), in order."""
        h = self.embed(ids)
        out = []
        for attn, ln1, mlp, ln2 in zip(self.attn, self.ln1, self.mlp, self.ln2):
            x1 = h + attn(h)
            y1 = ln1(x1)
            x2 = y1 + mlp(y1)
            h = ln2(x2)
            out += [x1, y1, x2, h]
        return out


class PreRMS(nn.Module):
    """Llama-like: h = h + attn(norm(h)); h = h + mlp(norm(h)), then a final norm."""

    def __init__(self, dim: int = DIM, blocks: int = 2, norm: type = LlamaRMSNorm) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim)
        self.input_layernorm = nn.ModuleList(norm(dim) for _ in range(blocks))
        self.attn = nn.ModuleList(Mixer(dim) for _ in range(blocks))
        self.post_attention_layernorm = nn.ModuleList(norm(dim) for _ in range(blocks))
        self.mlp = nn.ModuleList(
            nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
            for _ in range(blocks)
        )
        self.norm = norm(dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.trace(ids)[-1]

    def trace(self, ids: torch.Tensor) -> list[torch.Tensor]:
        h = self.embed(ids)
        out = []
        for n1, attn, n2, mlp in zip(self.input_layernorm, self.attn,
                                     self.post_attention_layernorm, self.mlp):  # fmt: skip
            y1 = n1(h)
            out += [h, y1]
            h = h + attn(y1)
            y2 = n2(h)
            out += [h, y2]
            h = h + mlp(y2)
        out += [h, self.norm(h)]
        return out


def _ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (BATCH, SEQ), generator=torch.Generator().manual_seed(1))


def _perturbed(model: nn.Module) -> nn.Module:
    """Norm weights away from their init (ones, zeros), so w and 1 + w differ in every way."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.startswith("ln"):
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def post_ln():
    torch.manual_seed(0)
    return _perturbed(PostLN()), _ids()


def pre_rms():
    torch.manual_seed(0)
    return _perturbed(PreRMS()), _ids()


def pre_gemma():
    torch.manual_seed(0)
    return _perturbed(PreRMS(norm=GemmaRMSNorm)), _ids()


def no_norm():
    return nn.Sequential(nn.Linear(4, 4)), torch.randn(2, 4)


def wrong_batch():
    """A batch that does not fit: the first block runs, the second raises."""

    class Breaks(PostLN):
        def forward(self, ids):
            h = self.ln1[0](self.embed(ids))
            return self.mlp[0](h[..., :3])  # a (.., 3) input to a (32 -> 64) linear

    torch.manual_seed(0)
    return Breaks(), _ids()
