"""scaleadvise.torch.parameterize: same numbers as `prescribe`, agreement with microsoft/mup,
state_dict / torch.compile round trips, and a coordinate check (muP flat, SP grows)."""

import io

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.nn.utils import parametrize as P  # noqa: E402

from scaleadvise.errors import UserError  # noqa: E402
from scaleadvise.core.prescribe import PrescribeRequest, prescribe  # noqa: E402
from scaleadvise.torch.parameterize import MARK, Multiplier, parameterize, plain_state_dict  # noqa: E402

PARAMS = ("stp", "ntk", "mup", "mfp")  # umup is refused: test_umup_is_refused
OPTIMS = ("sgd", "adam", "adamw", "adam-atan2", "adafactor", "adam-ps")


class MLP(nn.Module):
    """The `mlp` preset (§3.1) with its tensor names: input, hidden.{i}, output."""

    def __init__(self, n: int, depth: int = 3, d_in: int = 784, d_out: int = 10, out_bias: bool = False,
                 act=torch.relu) -> None:
        super().__init__()
        self.act = act
        self.input = nn.Linear(d_in, n)
        self.hidden = nn.ModuleList(nn.Linear(n, n) for _ in range(depth))
        self.output = nn.Linear(n, d_out, bias=out_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.input(x))
        for h in self.hidden:
            x = self.act(h(x))
        self.last = x
        return self.output(x)


class TinyLM(nn.Module):
    """NanoDO-style names: embedding table, a block, norms, readout (untied)."""

    def __init__(self, n: int, vocab: int = 50) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, n)
        self.attn_norm = nn.LayerNorm(n, bias=False)
        self.mlp_up = nn.Linear(n, 4 * n, bias=False)
        self.mlp_down = nn.Linear(4 * n, n, bias=False)
        self.final_norm = nn.RMSNorm(n)
        self.readout = nn.Linear(n, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        x = x + self.mlp_down(torch.nn.functional.gelu(self.mlp_up(self.attn_norm(x))))
        return self.readout(self.final_norm(x))


def _by_name(model: nn.Module) -> dict:
    return {t["name"]: t for t in getattr(model, MARK)["tensors"]}


def _scale(module: nn.Module, attr: str) -> float:
    if not P.is_parametrized(module, attr):
        return 1.0
    return next(f.scale for f in module.parametrizations[attr] if isinstance(f, Multiplier))


# ----------------------------------------------------------------------------------------
# (a) the numbers are prescribe()'s


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("optim", OPTIMS)
def test_values_equal_prescribe_for_mlp_preset(param, optim):
    width, base = 256, 64
    doc = prescribe(PrescribeRequest(param=param, optim=optim, width=width, base_width=base, base_lr=3e-3,
                                     model="mlp")).to_dict()
    model = MLP(width)
    groups = parameterize(model, param, optim, width=width, base_width=base, base_lr=3e-3, model_yaml="mlp")
    got = _by_name(model)
    assert set(got) == {t["name"] for t in doc["tensors"]}
    for want in doc["tensors"]:
        g = got[want["name"]]
        for key in ("layer_type", "shape", "init", "init_std", "multiplier", "lr", "eps", "scale_dim"):
            assert g[key] == pytest.approx(want[key]), (want["name"], key)
    # the live model carries the same multipliers, and each group the same LR / eps
    assert _scale(model.output, "weight") == pytest.approx(got["output"]["multiplier"])
    assert _scale(model.input, "bias") == pytest.approx(got["input.bias"]["multiplier"])
    for group in groups:
        layer = doc["layers"][group["layer_type"]]
        assert group["lr"] == pytest.approx(layer["lr"])
        if optim in ("sgd", "adam-atan2"):
            assert "eps" not in group
        elif optim == "adafactor":
            assert group["eps"][0] == layer["eps"]  # torch.optim.Adafactor's (eps1, eps2)
        else:
            assert group["eps"] == layer["eps"]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_base_model_classification_matches_the_yaml():
    """mup's base-shape rule derives the same layer types the preset does."""
    a, b = MLP(128), MLP(128)
    parameterize(a, "mup", width=128, base_width=32, model_yaml="mlp")
    parameterize(b, "mup", width=128, base_width=32, base_model=MLP(32))
    assert [(t["name"], t["layer_type"], t["multiplier"], t["lr"]) for t in getattr(a, MARK)["tensors"]] == \
        [(t["name"], t["layer_type"], t["multiplier"], t["lr"]) for t in getattr(b, MARK)["tensors"]]


def test_init_is_applied():
    torch.manual_seed(0)
    model = MLP(512, depth=1)
    parameterize(model, "stp", width=512, base_width=512, base_model=MLP(64, depth=1))
    assert model.hidden[0].weight.std().item() == pytest.approx(512 ** -0.5, rel=0.02)  # b = 1/2
    assert model.input.weight.std().item() == pytest.approx(784 ** -0.5, rel=0.02)  # fixed fan-in
    assert torch.all(model.input.bias == 0)
    model = MLP(512, depth=1)
    parameterize(model, "mfp", width=512, base_model=MLP(64, depth=1))
    assert model.hidden[0].parametrizations.weight.original.std().item() == pytest.approx(1.0, rel=0.02)  # b = 0
    assert _scale(model.output, "weight") == pytest.approx(1 / 512)  # a = 1


def test_name_heuristics_embedding_norms_and_groups_for_every_optimizer():
    from scaleadvise.torch.optim import AdamAtan2, AdamPS

    torch.manual_seed(0)
    make = {"sgd": lambda g: torch.optim.SGD(g, momentum=0.9), "adam": torch.optim.Adam,
            "adamw": torch.optim.AdamW, "adam-atan2": AdamAtan2, "adafactor": torch.optim.Adafactor,
            "adam-ps": AdamPS}
    ids = torch.randint(0, 50, (4, 8))
    for optim, opt_cls in make.items():
        model = TinyLM(64)
        groups = parameterize(model, "mup", optim, width=64, base_width=32, eps="per-layer"
                              if optim in ("adam", "adamw", "adam-ps") else None)
        got = _by_name(model)
        assert {k: v["layer_type"] for k, v in got.items()} == {
            "embed": "embedding", "attn_norm": "embedding", "mlp_up": "hidden", "mlp_down": "hidden",
            "final_norm": "embedding", "readout": "readout"}
        assert got["embed"]["scale_dim"] == 64 and got["mlp_down"]["scale_dim"] == 256  # fan-in 4n
        assert got["final_norm"]["init"] == "ones"
        opt = opt_cls(groups)
        before = model.mlp_up.weight.detach().clone()
        loss = model(ids).logsumexp(-1).mean()
        loss.backward()
        opt.step()
        assert not torch.equal(before, model.mlp_up.weight), optim


def test_layer_types_patterns_and_readout_bias():
    model = MLP(64, depth=2, out_bias=True)
    groups = parameterize(model, "mup", "adam", width=64, base_width=64, base_lr=1e-2,
                          layer_types={"input": "embedding", "hidden.*": "hidden", "output": "readout"})
    got = _by_name(model)
    assert got["hidden.1.bias"]["layer_type"] == "embedding"  # a bias follows its fan_in-1 rule
    assert got["output.bias"]["layer_type"] == "fixed" and got["output.bias"]["multiplier"] == 1.0
    assert {g["layer_type"] for g in groups} == {"embedding", "hidden", "readout", "fixed"}


def test_explicit_patterns_override_base_model():
    model = MLP(64, depth=1)
    parameterize(model, "stp", width=64, base_model=MLP(32, depth=1), layer_types={"hidden.0": "readout"})
    assert _by_name(model)["hidden.0"]["layer_type"] == "readout"


# ----------------------------------------------------------------------------------------
# (b) microsoft/mup: MuReadout + MuAdam / MuSGD


def _mup_quantities(n: int, base: int, optim: str) -> dict[str, float]:
    """Per parameter: multiplier^k x LR under mup (k = 1 for Adam, 2 for SGD)."""
    mup = pytest.importorskip("mup")

    def make(w: int) -> nn.Module:
        m = MLP(w, depth=2, d_in=16, d_out=4, out_bias=True)
        m.output = mup.MuReadout(w, 4, bias=True)
        return m

    model = make(n)
    mup.set_base_shapes(model, make(base))
    opt = (mup.MuAdam if optim == "adam" else mup.MuSGD)(model.parameters(), lr=1e-2)
    lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    k = 1 if optim == "adam" else 2
    out = {}
    for name, p in model.named_parameters():
        # MuReadout's forward is Linear(output_mult * x / width_mult): weight scaled, bias not.
        mult = model.output.output_mult / model.output.width_mult() if name == "output.weight" else 1.0
        out[name.removesuffix(".weight")] = mult ** k * lr[id(p)]
    return out


def _our_quantities(n: int, base: int, optim: str) -> dict[str, float]:
    model = MLP(n, depth=2, d_in=16, d_out=4, out_bias=True)
    parameterize(model, "mup", optim, width=n, base_width=base, base_lr=1e-2,
                 base_model=MLP(8, depth=2, d_in=16, d_out=4, out_bias=True))  # types only
    k = 1 if optim == "adam" else 2
    return {name: t["multiplier"] ** k * t["lr"] for name, t in _by_name(model).items()}


@pytest.mark.parametrize("optim", ["adam", "sgd"])
@pytest.mark.parametrize("ratio", [2, 4, 8])
def test_agrees_with_microsoft_mup(optim, ratio):
    """The abc-invariant per-layer quantity (§2.2: multiplier x LR for Adam, multiplier^2 x LR
    for SGD) scales the same way from base width to target width in both libraries."""
    pytest.importorskip("mup")
    base = 32
    theirs = {k: v / w for (k, v), w in zip(_mup_quantities(base * ratio, base, optim).items(),
                                           _mup_quantities(base, base, optim).values())}
    ours_n, ours_0 = _our_quantities(base * ratio, base, optim), _our_quantities(base, base, optim)
    ours = {k: ours_n[k] / ours_0[k] for k in ours_n}
    assert set(ours) == set(theirs)
    for name in theirs:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-9), name
    # and the ratios are not all trivially 1: the hidden layer really does scale
    assert ours["hidden.0"] == pytest.approx(1 / ratio if optim == "adam" else 1.0)
    assert ours["output"] == pytest.approx(1 / ratio)


# ----------------------------------------------------------------------------------------
# (c) twice is an error, and other bad input


def test_twice_is_an_error_not_a_double_scaling():
    model = MLP(64)
    parameterize(model, "mup", width=64, model_yaml="mlp")
    scale = _scale(model.output, "weight")
    with pytest.raises(UserError, match="already parameterized"):
        parameterize(model, "mup", width=64, model_yaml="mlp")
    wrapper = nn.Sequential(model)  # also when the parameterized model is inside another one
    with pytest.raises(UserError, match="already parameterized"):
        parameterize(wrapper, "stp", width=64, layer_types={"*": "hidden"})
    assert _scale(model.output, "weight") == scale


def test_bad_input():
    with pytest.raises(UserError, match=r"cannot tell the layer type of 0\.weight"):
        parameterize(nn.Sequential(nn.Linear(4, 8)), width=8)
    with pytest.raises(UserError, match="unknown layer type 'middle'"):
        parameterize(MLP(8), width=8, layer_types={"hidden.*": "middle"})
    with pytest.raises(UserError, match="base_model: has no parameter hidden.2.weight"):
        parameterize(MLP(16), width=16, base_model=MLP(8, depth=2))
    with pytest.raises(UserError, match="tied weights"):
        lm = TinyLM(16)
        lm.readout.weight = lm.embed.weight
        parameterize(lm, width=16)
    with pytest.raises(UserError, match="param: unknown parameterization"):
        parameterize(MLP(8), "mupp", width=8, model_yaml="mlp")
    with pytest.raises(UserError, match="has shape"):
        parameterize(MLP(8), width=16, model_yaml="mlp")
    model = MLP(8)
    with pytest.raises(UserError):
        parameterize(model, "stp", "sgd", width=8, eps=1e-8, model_yaml="mlp")
    assert not hasattr(model, MARK) and not P.is_parametrized(model.output)  # nothing half-applied


# ----------------------------------------------------------------------------------------
# (d) state_dict round trip, (e) torch.compile


def test_state_dict_round_trip_and_plain_export():
    torch.manual_seed(0)
    x = torch.randn(5, 784)
    a = MLP(64)
    groups = parameterize(a, "mup", "adam", width=64, base_width=32, model_yaml="mlp")
    opt = torch.optim.Adam(groups)
    a(x).square().mean().backward()
    opt.step()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    assert "output.parametrizations.weight.original" in a.state_dict()
    b = MLP(64)
    parameterize(b, "mup", "adam", width=64, base_width=32, model_yaml="mlp", init=False)
    buf.seek(0)
    b.load_state_dict(torch.load(buf))
    assert torch.equal(a(x), b(x))
    plain = MLP(64)  # effective weights under the ordinary keys, for code without scaleadvise
    plain.load_state_dict(plain_state_dict(a))
    torch.testing.assert_close(plain(x), a(x))


def _compiled_matches(backend: str) -> None:
    torch.manual_seed(0)
    model = TinyLM(32)
    parameterize(model, "mfp", "adam", width=32, base_width=16)  # multipliers on every layer type
    ids = torch.randint(0, 50, (2, 6))
    compiled = torch.compile(model, backend=backend)
    torch.testing.assert_close(compiled(ids), model(ids))
    compiled(ids).sum().backward()
    assert model.readout.parametrizations.weight.original.grad is not None


def test_forward_under_torch_compile():
    _compiled_matches("aot_eager")


@pytest.mark.slow
def test_forward_under_torch_compile_inductor():
    _compiled_matches("inductor")


# ----------------------------------------------------------------------------------------
# (f) coordinate check (Yang et al.'s test): muP activations flat in width, SP grows


def _last_hidden_rms(param: str, n: int, seed: int) -> float:
    from scaleadvise.torch.coord_check import trace

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x, y = torch.randn(32, 16, generator=gen), torch.randn(32, 4, generator=gen)
    # Linear activations, the setting of the theory (§3.1, B.1): with ReLU/GELU, 3 large SP
    # steps also kill units, which makes SP's growth noisy from seed to seed.
    model = MLP(n, depth=2, d_in=16, d_out=4, act=nn.Identity())
    base = MLP(32, depth=2, d_in=16, d_out=4)
    if param == "mup":  # the prescription: per-layer LR scaled from base width 64
        groups = parameterize(model, "mup", "adam", width=n, base_width=64, base_lr=3e-2, base_model=base)
    else:  # the deliberately wrong one: SP init with one global LR tuned at width 64
        groups = parameterize(model, "stp", "adam", width=64, base_width=64, base_lr=3e-2, base_model=base)
    opt = torch.optim.Adam(groups)
    mse = lambda m, batch: (m(batch[0]) - batch[1]).square().mean()  # noqa: E731
    out = trace(model, opt, mse, [(x, y)] * 3, x, ["hidden.1"])  # the last hidden layer's output
    return out["h"]["hidden.1"][-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coordinate_check_mup_flat_sp_grows(seed):
    """The check on an MLP through parameterize(); tests/test_coord_check.py runs it on the
    emitted script's NanoDO against the theory's exponents."""
    from scaleadvise.torch.coord_check import slope, spread

    widths = (64, 128, 256, 512)
    mup_rms = [_last_hidden_rms("mup", n, seed) for n in widths]
    sp_rms = [_last_hidden_rms("stp", n, seed) for n in widths]
    assert spread(mup_rms) < 2.0, mup_rms
    # Adam's Delta W x grows ~ n under one global LR (measured ~15x from 64 to 512)
    assert sp_rms[-1] / sp_rms[0] > 8.0, sp_rms
    assert slope(widths, sp_rms) > 1.0 > 0.2 > abs(slope(widths, mup_rms)), (sp_rms, mup_rms)


def test_fsdp2_param_groups_after_fully_shard():
    """fully_shard replaces the stored parameters by sharded DTensors: the multipliers still
    apply, and param_groups(model) rebuilt afterwards trains exactly like the unsharded model."""
    import copy
    import socket

    dist = pytest.importorskip("torch.distributed")
    from torch.distributed.fsdp import fully_shard

    from scaleadvise.torch.parameterize import param_groups

    if not dist.is_available() or dist.is_initialized():
        pytest.skip("needs torch.distributed with no process group yet")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        model = TinyLM(32)
        groups = parameterize(model, "mup", "adam", width=32, base_width=16, base_lr=1e-2)
        ref = copy.deepcopy(model)
        ids = torch.randint(0, 50, (2, 6))
        for m in (model.mlp_up, model.mlp_down, model.readout, model):
            fully_shard(m)
        sharded = param_groups(model)
        assert [g["lr"] for g in sharded] == [g["lr"] for g in groups]
        assert {id(p) for g in sharded for p in g["params"]} == {id(p) for p in model.parameters()}
        for m, gs in ((model, sharded), (ref, param_groups(ref))):
            opt = torch.optim.Adam(gs)
            m(ids).logsumexp(-1).mean().backward()
            opt.step()
        torch.testing.assert_close(model(ids), ref(ids))
    finally:
        dist.destroy_process_group()


def test_documented_import_gives_the_function():
    """`from scaleadvise.torch import parameterize` (the issue's usage) must be the function,
    not the submodule of the same name."""
    import importlib

    import scaleadvise.torch as pkg

    importlib.import_module("scaleadvise.torch.parameterize")  # as any earlier import would
    from scaleadvise.torch import parameterize as fn

    assert callable(fn) and fn is pkg.parameterize


def test_umup_is_refused():
    with pytest.raises(UserError, match="unit-scaled ops"):
        parameterize(MLP(32), "umup", "adam", width=32, base_width=16, model_yaml="mlp")
