"""PyTorch-native recipes: fp32 reference, bf16, fp16, dynamic int8 (torch.ao and torchao), TorchScript."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

from ... import env
from ...inputs.sources import model_class, skeleton
from ..base import BuildContext, Param, Recipe, read_json, write_json
from ..onednn_isa import isa_param
from ..torch_common import conv1d_to_linear, example_inputs, make_wrapper, quantizable_linears, save_state, torch_variant

AO_DEPRECATION = (
    "torch.ao.quantization is deprecated by PyTorch in favour of torchao "
    "(torchao.quantization.quantize_ with Int8DynamicActivationInt8WeightConfig)."
)
TS_DEPRECATION = "TorchScript is deprecated by PyTorch (in maintenance only); torch.export / torch.compile are its successors."


# -- full-precision family: the reference and its half-precision copies -----------------------
def _save_pretrained(dtype_name: str):
    def build(ctx: BuildContext, params: dict, out: Path) -> dict:
        import torch

        model = ctx.loaded().model
        if dtype_name != "float32":
            model = copy.deepcopy(model).to(getattr(torch, dtype_name))
        model.save_pretrained(str(out / "model"), safe_serialization=True)
        return {"dtype": dtype_name}

    return build


def _load_pretrained(dtype_name: str, notes_fn=None):
    def load(ctx: BuildContext, params: dict, art: Path):
        import torch

        dtype = getattr(torch, dtype_name)
        model = model_class(ctx.task).from_pretrained(str(art / "model"), dtype=dtype, use_safetensors=True, trust_remote_code=False,
                                                      attn_implementation="sdpa").eval()
        model.to(ctx.device)
        notes = notes_fn(ctx) if notes_fn else []
        return torch_variant("", ctx.task, model, device=ctx.device, notes=notes)

    return load


def mkldnn_bf16_supported() -> bool:
    """Whether PyTorch's oneDNN (mkldnn) runs bf16 matmuls on this CPU (it needs avx512 with bf16 support or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_cpu_notes() -> list[str]:
    """Why bf16 is (or is not) fast on this CPU, from its instruction sets (core.env) and PyTorch's own check."""
    if not env.has_native_bf16():
        onednn = "unsupported" if not mkldnn_bf16_supported() else "supported"
        return [f"This CPU has no native bf16 instructions (no avx512_bf16, no AMX; it is {env.isa_words()}), so oneDNN's bf16 matmul "
                f"is {onednn} here (torch.ops.mkldnn._is_mkldnn_bf16_supported()) and PyTorch runs every bf16 Linear in ATen's fallback bf16 GEMM, "
                "which widens each value to fp32 in software: usually slower than fp32, whose matmuls use the optimised fp32 GEMM."]
    if not env.has_amx():
        return ["This CPU has avx512_bf16 but no AMX: bf16 halves the weights, but expect little or no speed-up over fp32."]
    return []


def _bf16_notes(ctx: BuildContext) -> list[str]:
    return bf16_cpu_notes() if ctx.device == "cpu" else []


def _needs_cuda(device: str) -> str | None:
    if not env.cuda_available():
        return "fp16 needs a CUDA GPU: this machine has none (on CPU, fp16 matmuls are emulated and slow; use bf16)."
    if device != "cuda":
        return "fp16 runs on CUDA only: choose device cuda (on CPU use bf16)."
    return None


def _bf16_check(device: str) -> str | None:
    if device == "cuda" and env.cuda_available():
        import torch

        if not torch.cuda.is_bf16_supported():
            return "This GPU does not support bf16."
    return None


# -- dynamic int8 (torch.ao) -----------------------------------------------------------------
ENGINES = ("x86", "fbgemm", "onednn", "qnnpack")   # PyTorch's quantized kernel libraries (torch.backends.quantized.engine)


def _engine_param() -> Param:
    return Param("engine", env.default_quant_engine(), ENGINES, "PyTorch quantized kernel library")


def _dynamic_qconfig(engine: str):
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    return default_dynamic_qconfig if engine == "qnnpack" else per_channel_dynamic_qconfig


def _quantize_dynamic(model, names, engine):
    import torch
    from torch.ao.quantization import quantize_dynamic

    torch.backends.quantized.engine = engine
    qconfig = _dynamic_qconfig(engine)
    return quantize_dynamic(model, {n: qconfig for n in names}, dtype=torch.qint8, inplace=True)


def _dynamic_notes(engine: str) -> list[str]:
    notes = [AO_DEPRECATION]
    if engine == "qnnpack" and env.is_x86():
        notes.append("Engine qnnpack is the ARM/mobile kernel library: on this x86 CPU it is typically 2-6x slower than fp32; use engine=x86 (fbgemm/onednn).")
    if engine in ("x86", "fbgemm", "onednn") and not env.is_x86():
        notes.append(f"Engine {engine} targets x86 CPUs; on this {env.cpu_info()['arch']} CPU use qnnpack.")
    if env.is_x86() and not env.has_vnni():
        notes.append("This CPU has no VNNI instructions, so int8 matmuls gain little over fp32.")
    return notes


def build_dynamic_int8(ctx: BuildContext, params: dict, out: Path) -> dict:
    import torch

    engine = params["engine"]
    model = copy.deepcopy(ctx.loaded().model)
    converted = conv1d_to_linear(model)
    names = quantizable_linears(model)
    ctx.say(0.3, f"quantizing {len(names)} Linear layers (engine {engine})")
    _quantize_dynamic(model, names, engine)
    tensors, quantized = {}, set(names)
    for name in names:
        w, b = model.get_submodule(name)._packed_params._weight_bias()
        tensors[f"{name}.weight_int8"] = w.int_repr()
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            tensors[f"{name}.weight_scale"] = w.q_per_channel_scales().float()
            tensors[f"{name}.weight_zero_point"] = w.q_per_channel_zero_points().to(torch.int32)
        else:
            tensors[f"{name}.weight_scale"] = torch.tensor([w.q_scale()], dtype=torch.float32)
            tensors[f"{name}.weight_zero_point"] = torch.tensor([w.q_zero_point()], dtype=torch.int32)
        if b is not None:
            tensors[f"{name}.bias"] = b
    for key, value in model.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if owner.split("._packed_params")[0] in quantized or not isinstance(value, torch.Tensor) or value.is_quantized:
            continue
        if value.dtype.is_floating_point or value.dtype in (torch.int64, torch.int32):
            tensors[key] = value
    save_state(out / "weights.safetensors", tensors)
    write_json(out / "quantized.json", {"engine": engine, "modules": names, "conv1d_converted": converted, "per_channel": engine != "qnnpack"})
    return {"quantized_layers": len(names)}


def load_dynamic_int8(ctx: BuildContext, params: dict, art: Path):
    import torch
    from safetensors.torch import load_file

    meta = read_json(art / "quantized.json")
    tensors = load_file(str(art / "weights.safetensors"))
    model = skeleton(ctx.source)
    if meta["conv1d_converted"]:
        conv1d_to_linear(model)
    names = meta["modules"]
    float_state = {k: v for k, v in tensors.items() if not k.rsplit(".", 1)[-1].startswith("weight_") and k.rsplit(".", 1)[0] not in names}
    model.load_state_dict(float_state, strict=False)
    _quantize_dynamic(model, names, meta["engine"])
    for name in names:
        int8, scale, zp = (tensors[f"{name}.weight_{k}"] for k in ("int8", "scale", "zero_point"))
        if meta["per_channel"]:
            q = torch._make_per_channel_quantized_tensor(int8, scale.double(), zp.long(), 0)
        else:
            q = torch._make_per_tensor_quantized_tensor(int8, float(scale[0]), int(zp[0]))
        model.get_submodule(name).set_weight_bias(q, tensors.get(f"{name}.bias"))
    engine = meta["engine"]
    wrapper = make_wrapper(model, ctx.task)

    class EngineScoped(torch.nn.Module):  # the quantized engine is process-global: pin it on every call
        def forward(self, ids, mask):
            torch.backends.quantized.engine = engine
            return wrapper(ids, mask)

    def pin_engine():
        torch.backends.quantized.engine = engine

    return torch_variant("", ctx.task, model, notes=_dynamic_notes(engine), forward_module=EngineScoped(), before=pin_engine)


# -- torchao int8 (the maintained successor) ----------------------------------------------------
def _torchao_check(device: str) -> str | None:
    if importlib.util.find_spec("torchao") is None:
        return "torchao is not installed here (pip install torchao)."
    return None


def build_torchao_int8(ctx: BuildContext, params: dict, out: Path) -> dict:
    # torchao's int8 tensors are not safetensors-native: the artifact stores the int8 weights and
    # per-channel scales (the same values torchao computes), and load re-applies quantize_.
    from ..weight_codec import quantize_weights_to_file

    return quantize_weights_to_file(ctx, out, scheme="absmax", granularity="channel")


def load_torchao_int8(ctx: BuildContext, params: dict, art: Path):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    from ..weight_codec import load_dequantized

    model = load_dequantized(ctx, art)
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    return torch_variant("", ctx.task, model, notes=torchao_int8_notes())


def torchao_int8_notes() -> list[str]:
    """What torchao's int8 path does on this CPU, from its instruction sets (core.env)."""
    notes = ["torchao int8 dynamic activation + int8 weight (per-channel) via quantize_; torchao targets GPUs first: on the CPU every Linear call "
             "quantizes its activations per token with several eager PyTorch ops (choose_qparams_affine, quantize_affine), then multiplies with torch._int_mm."]
    if env.is_x86() and not env.has_vnni() and not env.has_amx():
        notes.append(f"This CPU has neither VNNI (avx512_vnni/avx_vnni) nor AMX (it is {env.isa_words()}): oneDNN has no int8 matmul kernel for "
                     "torch._int_mm here, so it runs ATen's fallback int8 GEMM (no oneDNN primitive is created), slower than the fp32 GEMM it replaces.")
    return notes


# -- torchao int4 weight-only: only where torchao has a CPU kernel ------------------------------------
TORCHAO_INT4_NO_CPU = ("torchao {version} has no int4 weight-only kernel for this CPU: Int4WeightOnlyConfig's packing formats need mslk "
                       "(plain, preshuffled; not installed), CUDA (tile_packed_to_4d, tinygemm) or an XPU/NPU (plain_int32); "
                       "use zeropoint-int4 or onnx-int4 (MatMulNBits has CPU kernels).")


def _torchao_int4_check(device: str) -> str | None:
    """torchao int4 weight-only runs on CUDA (tinygemm) or with mslk installed; on a plain CPU it has no kernel."""
    reason = _torchao_check(device)
    if reason:
        return reason
    if device == "cuda" and env.cuda_available():
        return None
    if importlib.util.find_spec("mslk") is not None:
        return None
    from importlib import metadata

    return TORCHAO_INT4_NO_CPU.format(version=metadata.version("torchao"))


def torchao_int4_cpu_probe() -> str | None:
    """Really try torchao int4 weight-only on a small CPU Linear with every packing format: None if one runs, else the errors.
    (Slow: imports torchao. The tests use it to check that _torchao_int4_check tells the truth.)"""
    import torch
    from torchao.quantization import Int4WeightOnlyConfig, quantize_
    from torchao.quantization.quantize_.workflows.int4.int4_packing_format import Int4PackingFormat

    errors = []
    for fmt in Int4PackingFormat:
        for dtype in (torch.float32, torch.bfloat16):
            layer = torch.nn.Sequential(torch.nn.Linear(128, 64)).eval().to(dtype)
            try:
                quantize_(layer, Int4WeightOnlyConfig(group_size=32, int4_packing_format=fmt))
                with torch.inference_mode():
                    layer(torch.randn(2, 128, dtype=dtype))
                return None
            except Exception as err:  # noqa: BLE001 - every failure is the answer
                errors.append(f"{fmt.value}/{str(dtype).split('.')[-1]}: {type(err).__name__}: {str(err)[:120]}")
    return "; ".join(errors)


def build_torchao_int4(ctx: BuildContext, params: dict, out: Path) -> dict:
    # torchao's int4 tensors are not safetensors-native: the artifact is the lab's packed zero-point int4 (groups of
    # group_size), and load hands the dequantized weights to torchao, which re-quantizes them onto the same grid.
    from ..weight_codec import quantize_weights_to_file

    return quantize_weights_to_file(ctx, out, scheme="zeropoint", granularity="group", bits=4, group_size=int(params["group_size"]))


def load_torchao_int4(ctx: BuildContext, params: dict, art: Path):
    from torchao.quantization import Int4WeightOnlyConfig, quantize_

    from ..weight_codec import load_dequantized

    model = load_dequantized(ctx, art).to(ctx.device)
    quantize_(model, Int4WeightOnlyConfig(group_size=int(params["group_size"])))
    notes = [f"torchao int4 weight-only (groups of {params['group_size']}) via quantize_, stored as the lab's packed zero-point int4."]
    return torch_variant("", ctx.task, model, device=ctx.device, notes=notes)


# -- TorchScript ------------------------------------------------------------------------------
TS_NO_CACHE = "a TorchScript trace has fixed inputs (ids and mask) and returns only the logits, so it cannot carry a KV cache"


def load_torchscript(ctx: BuildContext, params: dict, art: Path):
    import torch

    model = model_class(ctx.task).from_pretrained(str(art / "model"), use_safetensors=True, trust_remote_code=False, attn_implementation="eager").eval()
    model.config.return_dict = True
    wrapper = make_wrapper(model, ctx.task)
    ids, mask = example_inputs(ctx.tokenizer())
    with torch.inference_mode():
        traced = torch.jit.freeze(torch.jit.trace(wrapper, (ids, mask), check_trace=False, strict=False))
    notes = [TS_DEPRECATION, "The store keeps safetensors weights and re-traces at load: TorchScript archives contain pickles, which the store never loads."]
    return torch_variant("", ctx.task, model, notes=notes, forward_module=traced, no_cache=TS_NO_CACHE)


RECIPES = [
    Recipe("fp32", "PyTorch float32: the reference every other variant is compared with", _save_pretrained("float32"), _load_pretrained("float32"),
           params=(isa_param(torch=True),), reference=True),
    Recipe("bf16", "PyTorch bfloat16 weights and activations (CPU and CUDA)", _save_pretrained("bfloat16"), _load_pretrained("bfloat16", _bf16_notes),
           params=(isa_param(torch=True),), check=_bf16_check),
    Recipe("fp16", "PyTorch float16 (CUDA only)", _save_pretrained("float16"), _load_pretrained("float16"), check=_needs_cuda),
    Recipe(
        "dynamic-int8", "PyTorch post-training dynamic quantization of Linear layers (int8 weights, activations quantized on the fly)",
        build_dynamic_int8, load_dynamic_int8, params=(_engine_param(), isa_param(torch=True)),
        check=lambda d: "dynamic-int8 runs on CPU only." if d != "cpu" else None,
        deprecated=AO_DEPRECATION,
    ),
    Recipe(
        "torchao-int8", "torchao int8 dynamic activations + int8 weights (the maintained successor of torch.ao)",
        build_torchao_int8, load_torchao_int8, check=_torchao_check,
    ),
    Recipe(
        "torchao-int4", "torchao int4 weight-only (Int4WeightOnlyConfig), where torchao has a kernel for the device",
        build_torchao_int4, load_torchao_int4, params=(Param("group_size", "128", ("32", "64", "128"), "weights per group sharing one scale"),),
        check=_torchao_int4_check,
    ),
    Recipe("torchscript", "TorchScript trace of the fp32 model", _save_pretrained("float32"), load_torchscript, deprecated=TS_DEPRECATION),
]
