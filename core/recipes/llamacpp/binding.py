"""llama.cpp's C API through ctypes, over the shared object of the prebuilt ``xllamacpp`` wheel (no compiler).

``xllamacpp`` is a server binding: its Python API returns log-probabilities only for generated tokens. Its shared
object, though, exports llama.cpp's C API, so the lab calls it directly: load a GGUF, decode token batches into a
context with its own KV cache, and read the logits of every position.

Struct layouts change between llama.cpp builds, so this module never declares them: ``*_default_params()`` fill an
opaque buffer larger than any of them (by value, on x86-64 such a struct is returned through a caller-owned buffer
and passed on the stack, so a larger buffer is read only as far as the callee's own struct reaches), and only the
first four ``llama_context_params`` fields (``n_ctx``, ``n_batch``, ``n_ubatch``, ``n_seq_max``: the same offsets
for years) are written; the context's getters then confirm them. Threads are set with ``llama_set_n_threads``.
``llama_batch`` (seven fields, unchanged for years) is made by ``llama_batch_init`` and freed by ``llama_batch_free``.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

DISTRIBUTION = "xllamacpp"
PIN = "xllamacpp==2026.10.11549"
OPAQUE_BYTES = 1024        # larger than llama_model_params / llama_context_params of any build
CONTEXT_FIELDS = ("n_ctx", "n_batch", "n_ubatch", "n_seq_max")   # uint32 at offsets 0, 4, 8, 12


class Opaque(ctypes.Structure):
    _fields_ = [("raw", ctypes.c_uint8 * OPAQUE_BYTES)]


class Batch(ctypes.Structure):
    _fields_ = [("n_tokens", ctypes.c_int32), ("token", ctypes.POINTER(ctypes.c_int32)), ("embd", ctypes.POINTER(ctypes.c_float)),
                ("pos", ctypes.POINTER(ctypes.c_int32)), ("n_seq_id", ctypes.POINTER(ctypes.c_int32)),
                ("seq_id", ctypes.POINTER(ctypes.POINTER(ctypes.c_int32))), ("logits", ctypes.POINTER(ctypes.c_int8))]


LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_SIGNATURES = {
    "llama_backend_init": ([], None),
    "llama_log_set": ([LOG_CALLBACK, ctypes.c_void_p], None),
    "llama_print_system_info": ([], ctypes.c_char_p),
    "llama_model_default_params": ([], Opaque),
    "llama_context_default_params": ([], Opaque),
    "llama_model_load_from_file": ([ctypes.c_char_p, Opaque], ctypes.c_void_p),
    "llama_model_free": ([ctypes.c_void_p], None),
    "llama_model_get_vocab": ([ctypes.c_void_p], ctypes.c_void_p),
    "llama_vocab_n_tokens": ([ctypes.c_void_p], ctypes.c_int32),
    "llama_model_n_ctx_train": ([ctypes.c_void_p], ctypes.c_int32),
    "llama_model_size": ([ctypes.c_void_p], ctypes.c_uint64),
    "llama_init_from_model": ([ctypes.c_void_p, Opaque], ctypes.c_void_p),
    "llama_free": ([ctypes.c_void_p], None),
    "llama_n_ctx": ([ctypes.c_void_p], ctypes.c_uint32),
    "llama_n_batch": ([ctypes.c_void_p], ctypes.c_uint32),
    "llama_n_ubatch": ([ctypes.c_void_p], ctypes.c_uint32),
    "llama_n_seq_max": ([ctypes.c_void_p], ctypes.c_uint32),
    "llama_n_ctx_seq": ([ctypes.c_void_p], ctypes.c_uint32),
    "llama_set_n_threads": ([ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32], None),
    "llama_n_threads": ([ctypes.c_void_p], ctypes.c_int32),
    "llama_get_memory": ([ctypes.c_void_p], ctypes.c_void_p),
    "llama_memory_clear": ([ctypes.c_void_p, ctypes.c_bool], None),
    "llama_batch_init": ([ctypes.c_int32, ctypes.c_int32, ctypes.c_int32], Batch),
    "llama_batch_free": ([Batch], None),
    "llama_decode": ([ctypes.c_void_p, Batch], ctypes.c_int32),
    "llama_get_logits": ([ctypes.c_void_p], ctypes.POINTER(ctypes.c_float)),
}


class BindingError(RuntimeError):
    pass


def missing_reason() -> str | None:
    """Why llama.cpp cannot run here, or None."""
    if importlib.util.find_spec(DISTRIBUTION) is None:
        return f"llama.cpp's prebuilt wheel is not installed here (pip install {PIN})."
    return None


def version() -> str:
    from importlib import metadata

    return metadata.version(DISTRIBUTION)


def library_path() -> Path:
    spec = importlib.util.find_spec(DISTRIBUTION)
    if spec is None or not spec.submodule_search_locations:
        raise BindingError(missing_reason() or "xllamacpp has no package folder")
    folder = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(folder.glob("xllamacpp*.so")) + sorted(folder.glob("xllamacpp*.pyd")) + sorted(folder.glob("xllamacpp*.dylib"))
    if not found:
        raise BindingError(f"no shared object in {folder}: the xllamacpp wheel is damaged (pip install --force-reinstall {PIN})")
    return found[0]


_quiet = LOG_CALLBACK(lambda level, text, data: None)   # kept alive for the process: llama.cpp holds the pointer


@lru_cache(maxsize=1)
def lib() -> ctypes.CDLL:
    """The shared object with the signatures this module uses, the backend initialised and its logging silenced."""
    handle = ctypes.CDLL(str(library_path()))
    for name, (args, result) in _SIGNATURES.items():
        try:
            fn = getattr(handle, name)
        except AttributeError:
            raise BindingError(f"xllamacpp {version()} does not export {name}: pin {PIN}") from None
        fn.argtypes, fn.restype = args, result
    if not os.environ.get("QLAB_LLAMA_LOG"):
        handle.llama_log_set(_quiet, None)
    handle.llama_backend_init()
    return handle


def system_info() -> str:
    """llama.cpp's own line about the CPU features it was built with and found (e.g. 'CPU : SSE3 = 1 | AVX2 = 1 | ...')."""
    return lib().llama_print_system_info().decode(errors="replace").strip()


class Model:
    """A GGUF loaded by llama.cpp (memory-mapped)."""

    def __init__(self, path: Path):
        self.lib = lib()
        self.path = Path(path)
        if not self.path.is_file():
            raise BindingError(f"no GGUF at {self.path}")
        self.ptr = self.lib.llama_model_load_from_file(str(self.path).encode(), self.lib.llama_model_default_params())
        if not self.ptr:
            raise BindingError(f"llama.cpp could not load {self.path.name} (set QLAB_LLAMA_LOG=1 to see its log)")
        self.n_vocab = int(self.lib.llama_vocab_n_tokens(self.lib.llama_model_get_vocab(self.ptr)))
        self.n_ctx_train = int(self.lib.llama_model_n_ctx_train(self.ptr))
        self.size = int(self.lib.llama_model_size(self.ptr))

    def close(self) -> None:
        if getattr(self, "ptr", None):
            self.lib.llama_model_free(self.ptr)
            self.ptr = None

    __del__ = close


class Context:
    """One llama.cpp context on a model: ``n_seq`` sequences of up to ``n_ctx_seq`` positions each, with its KV cache.

    :meth:`decode` appends tokens to sequences and returns the logits of every token it was given.
    """

    def __init__(self, model: Model, n_ctx_seq: int, n_seq: int = 1, threads: int | None = None, n_batch: int = 512):
        self.model, self.lib = model, model.lib
        self.n_seq, self.n_batch = int(n_seq), int(n_batch)
        params = self.lib.llama_context_default_params()
        wanted = (int(n_ctx_seq) * self.n_seq, self.n_batch, self.n_batch, self.n_seq)
        fields = np.frombuffer(bytearray(params.raw), dtype=np.uint32).copy()
        fields[:4] = wanted
        ctypes.memmove(params.raw, fields.tobytes()[:16], 16)
        self.ptr = self.lib.llama_init_from_model(model.ptr, params)
        if not self.ptr:
            raise BindingError(f"llama.cpp could not make a context of {wanted[0]} positions for {model.path.name}")
        got = (self.lib.llama_n_ctx(self.ptr), self.lib.llama_n_batch(self.ptr), self.lib.llama_n_ubatch(self.ptr), self.lib.llama_n_seq_max(self.ptr))
        # llama.cpp may pad n_ctx up and clamps the batch sizes to it; the sequence count comes back as it was asked for
        if got[0] < wanted[0] or not 0 < got[1] <= wanted[1] or not 0 < got[2] <= got[1] or got[3] != wanted[3]:
            self.close()
            raise BindingError(f"llama_context_params of xllamacpp {version()} are not laid out as expected: asked for "
                               f"{dict(zip(CONTEXT_FIELDS, wanted))}, got {dict(zip(CONTEXT_FIELDS, got))}; pin {PIN}")
        self.n_batch = int(got[1])
        self.n_ctx_seq = int(self.lib.llama_n_ctx_seq(self.ptr))
        n = int(threads or os.cpu_count() or 1)
        self.lib.llama_set_n_threads(self.ptr, n, n)
        self.threads = int(self.lib.llama_n_threads(self.ptr))
        self.memory = self.lib.llama_get_memory(self.ptr)
        self.batch = self.lib.llama_batch_init(self.n_batch, 0, 1)
        self.lock = threading.Lock()

    def clear(self) -> None:
        """Forget every sequence (the KV cache is emptied)."""
        self.lib.llama_memory_clear(self.memory, True)

    def decode(self, tokens: np.ndarray, positions: np.ndarray, seqs: np.ndarray, outputs: np.ndarray | None = None) -> np.ndarray:
        """Decode ``tokens`` at ``positions`` of sequences ``seqs`` (all 1-D, same length), in chunks of ``n_batch``.

        Returns float32 logits [number of True ``outputs`` (default: every token), vocab], in the tokens' order."""
        tokens = np.asarray(tokens, dtype=np.int32).reshape(-1)
        positions, seqs = np.asarray(positions, dtype=np.int32).reshape(-1), np.asarray(seqs, dtype=np.int32).reshape(-1)
        outputs = np.ones(len(tokens), dtype=bool) if outputs is None else np.asarray(outputs, dtype=bool).reshape(-1)
        if positions.max(initial=0) >= self.n_ctx_seq or seqs.max(initial=0) >= self.n_seq:
            raise BindingError(f"position {int(positions.max())} or sequence {int(seqs.max())} is beyond this context "
                               f"({self.n_ctx_seq} positions x {self.n_seq} sequences)")
        out = np.empty((int(outputs.sum()), self.model.n_vocab), dtype=np.float32)
        done, b = 0, self.batch
        with self.lock:
            for start in range(0, len(tokens), self.n_batch):
                sl = slice(start, start + self.n_batch)
                n = len(tokens[sl])
                np.ctypeslib.as_array(b.token, shape=(n,))[:] = tokens[sl]
                np.ctypeslib.as_array(b.pos, shape=(n,))[:] = positions[sl]
                np.ctypeslib.as_array(b.n_seq_id, shape=(n,))[:] = 1
                np.ctypeslib.as_array(b.logits, shape=(n,))[:] = outputs[sl]
                for i, seq in enumerate(seqs[sl].tolist()):
                    b.seq_id[i][0] = seq
                b.n_tokens = n
                code = self.lib.llama_decode(self.ptr, b)
                if code != 0:
                    raise BindingError(f"llama_decode failed with code {code} ({n} tokens)")
                k = int(outputs[sl].sum())
                if k:
                    out[done:done + k] = np.ctypeslib.as_array(self.lib.llama_get_logits(self.ptr), shape=(k, self.model.n_vocab))
                    done += k
        return out

    def close(self) -> None:
        if getattr(self, "batch", None) is not None:
            self.lib.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ptr", None):
            self.lib.llama_free(self.ptr)
            self.ptr = None

    __del__ = close
