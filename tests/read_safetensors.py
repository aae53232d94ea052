#!/usr/bin/env python3
"""An independent reader of safetensors files, in plain Python (json and
struct only: no NumPy, no safetensors package), to check that a file gpunet
saves reads as the format specifies.

The format (https://github.com/huggingface/safetensors): 8 bytes, the
header's length N as a little-endian u64; N bytes of JSON mapping each
tensor's name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
into the data that follows the header), plus an optional "__metadata__"
object of strings; then the data, little-endian, row-major.

Usage: read_safetensors.py FILE
Prints one JSON object: {"metadata": {...}, "tensors": {name: {"dtype",
"shape", "values"}}} with the values flattened in row-major order.
"""

import json
import struct
import sys

# dtype -> (struct format character, bytes per value)
FORMATS = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "I32": ("i", 4), "U8": ("B", 1)}


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: {len(blob)} bytes, shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if 8 + header_len > len(blob):
        raise ValueError(f"{path}: the header's length {header_len} runs past the file's end")
    header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
    data = blob[8 + header_len :]
    metadata = header.pop("__metadata__", {})
    tensors = {}
    end_of_last = 0
    # Tensors in the order of their data, which must tile the data buffer.
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dtype, shape = info["dtype"], info["shape"]
        begin, end = info["data_offsets"]
        if begin != end_of_last:
            raise ValueError(f"{path}: {name} starts at {begin}, the data before it ends at {end_of_last}")
        char, size = FORMATS[dtype]
        count = 1
        for dim in shape:
            count *= dim
        if end - begin != count * size:
            raise ValueError(f"{path}: {name} is {dtype} {shape} ({count * size} bytes) but spans {end - begin}")
        values = struct.unpack(f"<{count}{char}", data[begin:end])
        tensors[name] = {"dtype": dtype, "shape": shape, "values": list(values)}
        end_of_last = end
    if end_of_last != len(data):
        raise ValueError(f"{path}: {len(data) - end_of_last} bytes after the last tensor")
    return {"metadata": metadata, "tensors": tensors}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_safetensors.py FILE")
    json.dump(read(sys.argv[1]), sys.stdout)
