"""TensorBoard event files (``train-batch --tensorboard``) without TensorFlow or tensorboard.

An event file is a sequence of TFRecords — ``uint64 length, uint32 masked CRC-32C of the
length, data, uint32 masked CRC-32C of the data`` (little-endian) — each holding one
serialised ``tensorflow.Event`` protocol buffer: ``wall_time`` (1, double), ``step`` (2,
int64) and one of ``file_version`` (3, string), ``summary`` (5: repeated ``Value`` (1): ``tag``
(1), ``simple_value`` (2, float) or ``image`` (4: height 1, width 2, colorspace 3,
encoded_image_string 4)) or ``session_log`` (7: ``status`` (1), START = 1).  Those few fields
are written here by hand, so the files need no dependency and TensorBoard (any version) reads
them; :func:`read` parses them back (CRCs checked) for tests and scripts.

A ``session_log START`` at the step a run resumes from tells TensorBoard to drop the points of
the earlier attempt past that step (they were trained again after the checkpoint).
"""

import os
import socket
import struct
import time

# ------------------------------------------------------------------------------ CRC-32C


def _crc_table():
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    table = _TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- protobuf


def _varint(value):
    value &= (1 << 64) - 1  # negative int64 as two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _double(field, value):
    return _key(field, 1) + struct.pack("<d", float(value))


def _float(field, value):
    return _key(field, 5) + struct.pack("<f", float(value))


def _int(field, value):
    return _key(field, 0) + _varint(int(value))


def _bytes(field, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _key(field, 2) + _varint(len(data)) + data


def _event(step, body, wall_time=None):
    return _double(1, time.time() if wall_time is None else wall_time) + _int(2, step) + body


def png_size(data):
    """(height, width) from a PNG's header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


# ------------------------------------------------------------------------------- writer


class EventWriter:
    """Appends events to a new ``events.out.tfevents.*`` file in ``logdir``."""

    def __init__(self, logdir):
        os.makedirs(logdir, exist_ok=True)
        host = socket.gethostname() or "localhost"
        name = f"events.out.tfevents.{time.time():.6f}.{host}.{os.getpid()}.galtools"
        self.path = os.path.join(logdir, name)
        self._fh = open(self.path, "ab")
        self._write(_event(0, _bytes(3, "brain.Event:2")))

    def _write(self, data):
        header = struct.pack("<Q", len(data))
        self._fh.write(
            header
            + struct.pack("<I", masked_crc(header))
            + data
            + struct.pack("<I", masked_crc(data))
        )
        self._fh.flush()

    def start(self, step):
        """A session start at ``step``: TensorBoard drops earlier points past it."""
        self._write(_event(step, _bytes(7, _int(1, 1))))

    def scalars(self, step, values):
        """One point per ``{tag: number}`` (NaN and non-numbers skipped) at ``step``."""
        body = b""
        for tag, value in values.items():
            try:
                value = float(value)
            except (TypeError, ValueError):
                continue
            if value == value:
                body += _bytes(1, _bytes(1, tag) + _float(2, value))
        if body:
            self._write(_event(step, _bytes(5, body)))

    def image(self, step, tag, png):
        """A PNG image (bytes) at ``step``."""
        height, width = png_size(png)
        image = _int(1, height) + _int(2, width) + _int(3, 4) + _bytes(4, png)
        self._write(_event(step, _bytes(5, _bytes(1, _bytes(1, tag) + _bytes(4, image)))))

    def close(self):
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------------------- reader


def _fields(data):
    """(field, wire type, value) of a protobuf message (varints as int, 64/32-bit as bytes)."""
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _read_varint(data, at)
        elif wire == 1:
            value, at = data[at : at + 8], at + 8
        elif wire == 2:
            size, at = _read_varint(data, at)
            value, at = data[at : at + size], at + size
        elif wire == 5:
            value, at = data[at : at + 4], at + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield field, wire, value


def _read_varint(data, at):
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def records(path):
    """The data of each TFRecord of ``path``; ValueError on a bad length or CRC."""
    with open(path, "rb") as fh:
        blob = fh.read()
    at = 0
    while at < len(blob):
        header = blob[at : at + 8]
        if len(header) < 8 or struct.unpack("<I", blob[at + 8 : at + 12])[0] != masked_crc(header):
            raise ValueError(f"{path}: bad record header at byte {at}")
        (size,) = struct.unpack("<Q", header)
        data = blob[at + 12 : at + 12 + size]
        crc = blob[at + 12 + size : at + 16 + size]
        if len(data) < size or struct.unpack("<I", crc)[0] != masked_crc(data):
            raise ValueError(f"{path}: bad record data at byte {at}")
        yield data
        at += 16 + size


def read(path):
    """The events of ``path`` as dicts: ``wall_time``, ``step`` and ``file_version``,
    ``session_start`` (True), ``scalars`` ({tag: value}) or ``images`` ({tag: (height,
    width, png bytes)})."""
    out = []
    for data in records(path):
        event = {"step": 0}
        for field, _, value in _fields(data):
            if field == 1:
                event["wall_time"] = struct.unpack("<d", value)[0]
            elif field == 2:
                event["step"] = value - (1 << 64) if value >= 1 << 63 else value
            elif field == 3:
                event["file_version"] = value.decode()
            elif field == 7:
                status = dict((f, v) for f, _, v in _fields(value)).get(1)
                event["session_start"] = status == 1
            elif field == 5:
                for f, _, item in _fields(value):
                    if f != 1:
                        continue
                    parts = {g: v for g, _, v in _fields(item)}
                    tag = parts.get(1, b"").decode()
                    if 2 in parts:
                        event.setdefault("scalars", {})[tag] = struct.unpack("<f", parts[2])[0]
                    elif 4 in parts:
                        image = {g: v for g, _, v in _fields(parts[4])}
                        event.setdefault("images", {})[tag] = (
                            image.get(1),
                            image.get(2),
                            image.get(4, b""),
                        )
        out.append(event)
    return out
