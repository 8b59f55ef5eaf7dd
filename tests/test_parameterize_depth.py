"""parameterize with depth and weight decay: residual branches found from structure or named,
branch multipliers applied in the forward, per-group LR/eps/decay, refusals in one line."""

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from scaleadvise.errors import UserError  # noqa: E402
from scaleadvise.torch.parameterize import MARK, parameterize  # noqa: E402
from scaleadvise.torch.residual import find_branches  # noqa: E402


class Block(nn.Module):
    """nanoGPT's pre-LN block (dropout after the attention output, as nanoGPT has)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(n), nn.Linear(n, n), nn.LayerNorm(n)
        self.mlp = nn.Sequential(nn.Linear(n, 4 * n), nn.GELU(), nn.Linear(4 * n, n))
        self.drop = nn.Dropout(0.0)

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln_1(x)))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n: int, depth: int, vocab: int = 40, block=Block) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, n)
        self.h = nn.ModuleList(block(n) for _ in range(depth))
        self.ln_f = nn.LayerNorm(n)
        self.lm_head = nn.Linear(n, vocab, bias=False)

    def forward(self, idx):
        x = self.wte(idx)
        for b in self.h:
            x = b(x)
        return self.lm_head(self.ln_f(x))


def _groups_by_param(groups):
    return {id(p): g for g in groups for p in g["params"]}


def test_branches_found_from_structure():
    br = find_branches(GPT(32, 3))
    assert br.outputs == [f"h.{i}.{m}" for i in range(3) for m in ("attn", "mlp")]  # dropout looked through
    assert br.blocks == {"h.0", "h.1", "h.2"}
    assert "h.1.ln_1.weight" in br.params and "h.2.mlp.2.bias" in br.params  # pre-norms sit on the branch
    assert not {"wte.weight", "ln_f.weight", "lm_head.weight"} & br.params


def test_emitted_nanodo_model_branches():
    from scaleadvise.script.template.nanodo import NanoDO

    br = find_branches(NanoDO(width=32, depth=2, heads=2, context=8, vocab=16, ffn=128))
    assert br.outputs == ["blocks.0.attn", "blocks.0.mlp", "blocks.1.attn", "blocks.1.mlp"]
    assert "blocks.0.attn_norm.weight" in br.params and "final_norm.weight" not in br.params


def _tensors(model):
    return {t["name"]: t for t in getattr(model, MARK)["tensors"]}


def _group_of(model, groups):
    """Tensor name -> its optimizer group (names as in the prescription)."""
    from scaleadvise.torch.parameterize import _plain_name

    by = {id(p): g for g in groups for p in g["params"]}
    return {_plain_name(n).removesuffix(".weight"): by[id(p)] for n, p in model.named_parameters()}


@pytest.mark.parametrize("name,alpha", [("completep", 1.0), ("depth-mup", 0.5)])
def test_groups_carry_the_depth_factors_and_decay(name, alpha, one_torch_thread):
    L, L0, width, base, lam = 8, 2, 64, 32, 1e-4
    common = dict(width=width, base_width=base, base_lr=1e-2, eps="per-layer", base_eps=1e-8)
    model, plain = GPT(width, L), GPT(width, L)
    groups = parameterize(model, "mup", "adamw", **common, depth_param=name, base_depth=L0, weight_decay=lam)
    parameterize(plain, "mup", "adamw", **common)
    r = L / L0
    assert getattr(model, MARK)["residual_multiplier"] == pytest.approx(r ** -alpha)
    deep, flat, group = _tensors(model), _tensors(plain), _group_of(model, groups)
    assert len(deep) == 4 + 10 * L  # wte, ln_f (+bias), lm_head; per block 5 weights and 5 biases
    for n, t in deep.items():
        branch = n.startswith("h.")
        assert t["residual"] == branch, n
        assert t["lr"] == pytest.approx(flat[n]["lr"] * (r ** (alpha - 1) if branch else 1), rel=1e-12), n
        assert t["eps"] == pytest.approx(flat[n]["eps"] * (r ** -alpha if branch else 1), rel=1e-12), n
        assert t["lr"] * t["weight_decay"] == pytest.approx(lam if t["kind"] in ("linear", "embedding") else 0), n
        g = group[n]
        assert (g["lr"], g["eps"], g["weight_decay"]) == (t["lr"], t["eps"], t["weight_decay"]), n


def test_forward_scales_each_branch(one_torch_thread):
    """The parameterized forward is h + m f(h) per branch: compare with the block written out by hand."""
    torch.manual_seed(0)
    model = GPT(16, 4)
    parameterize(model, "stp", "adamw", width=16, base_width=16, depth_param="completep", base_depth=1, init=False)
    m = getattr(model, MARK)["residual_multiplier"]
    assert m == 0.25
    idx = torch.randint(0, 40, (2, 5))
    with torch.no_grad():
        got = model(idx)
        for b in model.h:  # the hand-written forward applies m itself
            b.attn._forward_hooks.clear()
            b.mlp._forward_hooks.clear()
        x = model.wte(idx)
        for b in model.h:
            x = x + m * b.attn(b.ln_1(x))
            x = x + m * b.mlp(b.ln_2(x))
        want = model.lm_head(model.ln_f(x))
        assert torch.allclose(got, want, atol=1e-6) and not torch.allclose(model(idx), want, atol=1e-3)


def test_named_branches_for_a_block_fx_cannot_trace(one_torch_thread):
    class Branchy(Block):
        def forward(self, x):
            if x.sum() > -1e9:  # control flow on a value: torch.fx cannot trace this
                x = x + self.drop(self.attn(self.ln_1(x)))
            return x + self.mlp(self.ln_2(x))

    with pytest.raises(UserError, match="found no residual branch"):
        parameterize(GPT(16, 2, block=Branchy), "mup", "adamw", width=16, depth_param="completep", base_depth=1)
    with pytest.raises(UserError, match="cannot tell whether h.0.ln_1.weight sits on a residual branch"):
        parameterize(GPT(16, 2, block=Branchy), "mup", "adamw", width=16, depth_param="completep", base_depth=1,
                     residual_branches=["h.*.attn", "h.*.mlp"])
    model = GPT(16, 2, block=Branchy)
    parameterize(model, "mup", "adamw", width=16, depth_param="depth-mup", base_depth=1,
                 residual_branches=["h.*.attn", "h.*.mlp"], residual_params=["h.*.ln_*"])
    t = _tensors(model)
    assert t["h.1.ln_2"]["residual"] and t["h.0.mlp.0"]["residual"] and not t["ln_f"]["residual"]
    assert getattr(model, MARK)["residual_branches"]["found"] == "residual_branches"


class NoModuleOutput(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin = nn.Linear(n, n)

    def forward(self, x):
        return x + torch.tanh(self.lin(x))


class SharedDropout(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.lin, self.drop = nn.Linear(n, n), nn.Linear(n, n)

    def forward(self, x):
        y = self.drop(x)  # the same module on the stream and at the branch's end
        return y + self.drop(self.lin(y))


@pytest.mark.parametrize("block,match", [
    (NoModuleOutput, "does not end in a module"),
    (SharedDropout, "is called in h.0 other than as a residual branch output"),
])
def test_refuses_what_it_cannot_place(block, match):
    with pytest.raises(UserError, match=match):
        parameterize(GPT(16, 2, block=block), "mup", "adamw", width=16, depth_param="completep", base_depth=1,
                     layer_types={"h.*": "hidden"})


def test_bad_arguments():
    with pytest.raises(UserError, match="wd_convention='independent'"):
        parameterize(GPT(16, 2), "mup", "adamw", width=16, weight_decay=1e-4, wd_convention="independent")
    with pytest.raises(UserError, match="need a depth_param"):
        parameterize(GPT(16, 2), "mup", "adamw", width=16, residual_branches=["h.*.attn"])
    with pytest.raises(UserError, match="matches no module"):
        parameterize(GPT(16, 2), "mup", "adamw", width=16, depth_param="completep", base_depth=1,
                     residual_branches=["blocks.*.attn"])
    with pytest.raises(UserError, match="needs base_depth"):
        parameterize(GPT(16, 2), "mup", "adamw", width=16, depth_param="completep")
    model = GPT(16, 2)
    parameterize(model, "stp", "adamw", width=16, depth_param="completep", base_depth=1, init=False)
    with pytest.raises(UserError, match="already parameterized"):
        parameterize(model, "stp", "adamw", width=16)


def test_depth_defaults_to_the_blocks_found():
    model = GPT(16, 6)
    parameterize(model, "stp", "adamw", width=16, depth_param="completep", base_depth=3)
    assert getattr(model, MARK)["depth"]["depth"] == 6 and getattr(model, MARK)["residual_multiplier"] == 0.5


def test_model_yaml_flags_must_agree_with_the_trace():
    from scaleadvise.script.template.nanodo import NanoDO

    model = NanoDO(width=32, depth=2, heads=2, context=8, vocab=16, ffn=128)
    parameterize(model, "mup", "adamw", width=32, base_width=32, model_yaml=_nanodo_yaml(), depth_param="completep",
                 base_depth=1)
    t = _tensors(model)
    assert all(v["residual"] == n.startswith("blocks.") for n, v in t.items())
    # the template keeps its tables as bare Parameters: the YAML says they are tables (n_t = width, not vocab)
    assert t["embed.tokens"]["kind"] == "embedding" and t["embed.tokens"]["scale_dim"] == 32


def _nanodo_yaml() -> str:
    import tempfile

    from scaleadvise.core.model import PRESET_DIR

    text = (PRESET_DIR / "nanodo.yaml").read_text().replace("depth: 8", "depth: 2").replace("head_dim: 128", "head_dim: 16")
    text = text.replace("vocab: 32101", "vocab: 16").replace("context: 512", "context: 8")
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(text)
    f.close()
    return f.name


def test_branch_multiplier_under_torch_compile(one_torch_thread):
    model = GPT(16, 2)
    parameterize(model, "mup", "adamw", width=16, base_width=8, depth_param="completep", base_depth=1)
    idx = torch.randint(0, 40, (2, 5))
    with torch.no_grad():
        assert torch.allclose(torch.compile(model, backend="eager")(idx), model(idx), atol=1e-6)
