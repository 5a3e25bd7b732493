"""Refusing pathological module shapes before anything compiles them.

Cranelift's time and memory grow with the *shape* of a function, not just its size: a 3 KiB
function of 500 nested `loop`s with 150 block parameters each and one `br_table` over all of
them needs 1.4 GB and 1.4 s to compile, 5 KiB of the same needs 3.3 GB.  The compile child's
memory limit and timeout (`compile_worker`) are what bound that; the checks here refuse the
known bad shapes earlier, with a message saying which rule the module broke and where.

`check_shape(wasm)` walks the module once and raises `ShapeError` at the first broken rule:

- section level (a streaming LEB128 parse of the type, function and code sections, each
  function body skipped by its size): the parameter and result counts of every function type
  (any of them can be a block type), the number of defined functions, the size of each body,
  the locals of each function;
- instruction level (every body decoded, opcode by opcode): the nesting depth of
  `block`/`loop`/`if`, the nesting depth of blocks with parameters or several results, and the
  number of targets of each `br_table`.

The walk is linear in the module's size, allocates nothing per instruction, and never raises
anything but `ShapeError`: bytes it does not understand (an invalid module, or an instruction of
a proposal the engine has turned off) end the check of that section or function, and the
compiler's validator then refuses the module with its own message.  The thresholds (module
constants, the same for every plugin) are far above what the example plugins of all six guest
languages use; ABI.md section 8 lists them.
"""

from __future__ import annotations

#: Parameters of one function type; a function type can also be the type of a block, and block
#: parameters times branch targets is what makes Cranelift's work explode.
MAX_TYPE_PARAMS = 32
#: Results of one function type (multi-value), for the same reason.
MAX_TYPE_RESULTS = 32
#: Functions defined by the module (imports not counted).
MAX_FUNCTIONS = 100_000
#: Size of one function body, in bytes (1.2 MB of calls took 2.4 s and 630 MB to compile).
MAX_FUNCTION_BODY_BYTES = 512 * 1024
#: Locals declared by one function (parameters not counted).
MAX_FUNCTION_LOCALS = 10_000
#: Nesting depth of `block`, `loop` and `if` inside one function (the Go example needs 402: Go
#: nests one block per resume point; 16 384 plain loops took 6.3 s to compile, 4096 took 0.5 s).
MAX_CONTROL_DEPTH = 4096
#: Nesting depth of blocks whose type is a type index, i.e. that take parameters or return more
#: than one value (no example toolchain emits one; 512 such loops of 32 parameters took 330 MB).
MAX_MULTI_VALUE_BLOCK_DEPTH = 64
#: Targets of one `br_table` instruction (the default target not counted; the Go example has 801).
MAX_BR_TABLE_TARGETS = 16_384

#: Everything above, for the cache key: a module cached under other rules is checked again.
RULES = (f"shape=1:{MAX_TYPE_PARAMS}:{MAX_TYPE_RESULTS}:{MAX_FUNCTIONS}:{MAX_FUNCTION_BODY_BYTES}:"
         f"{MAX_FUNCTION_LOCALS}:{MAX_CONTROL_DEPTH}:{MAX_MULTI_VALUE_BLOCK_DEPTH}:{MAX_BR_TABLE_TARGETS}")

_TYPE_SECTION, _FUNCTION_SECTION, _CODE_SECTION = 1, 3, 10
_FUNC_FORM = 0x60
# One-byte value types of the enabled proposals: i32 i64 f32 f64 v128 funcref externref.
_VALTYPES = frozenset({0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F})


class ShapeError(ValueError):
    """The module has a shape this host refuses to compile; the message names the rule."""


class _Stop(Exception):
    """Bytes the walk does not understand: stop checking this part, the validator decides."""


def _uleb(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """An unsigned LEB128 at `pos` (at most 10 bytes), and the position after it."""
    result = shift = 0
    limit = min(end, pos + 10)
    while pos < limit:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
    raise _Stop


# -- instruction kinds (what follows the opcode) ---------------------------------------------------

_UNKNOWN, _NONE, _LEB, _LEB2, _MEMARG, _BYTES4, _BYTES8, _BLOCK, _END, _BR_TABLE, _SELECT_T, _FC, _FD = range(13)

_KINDS = bytearray([_UNKNOWN]) * 256
for _op in (0x00, 0x01, 0x05, 0x0F, 0x1A, 0x1B, 0xD1, *range(0x45, 0xC5)):
    _KINDS[_op] = _NONE
for _op in (0x0C, 0x0D, 0x10, *range(0x20, 0x27), 0x3F, 0x40, 0x41, 0x42, 0xD0, 0xD2):
    _KINDS[_op] = _LEB
_KINDS[0x11] = _LEB2  # call_indirect typeidx tableidx
for _op in range(0x28, 0x3F):
    _KINDS[_op] = _MEMARG
_KINDS[0x43] = _BYTES4
_KINDS[0x44] = _BYTES8
for _op in (0x02, 0x03, 0x04):
    _KINDS[_op] = _BLOCK
_KINDS[0x0B] = _END
_KINDS[0x0E] = _BR_TABLE
_KINDS[0x1C] = _SELECT_T
_KINDS[0xFC] = _FC
_KINDS[0xFD] = _FD
# Not listed, so _UNKNOWN: the opcodes of proposals the engine turns off (exceptions 0x06-0x0A,
# 0x18, 0x19, 0x1F; tail calls 0x12, 0x13; function references 0x14, 0x15, 0xD3-0xD6; GC 0xFB;
# threads 0xFE). Meeting one ends the function's walk; the validator then refuses the module.

# 0xFC sub-opcodes: 0-7 saturating truncation (no immediate), 8-17 bulk memory and tables.
_FC_LEBS = {**dict.fromkeys(range(8), 0), 8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1}
# 0xFD (SIMD) sub-opcodes with immediates; every other one up to 0xFF has none.
_FD_MEMARG = frozenset(range(0, 12)) | {92, 93}
_FD_LANE = frozenset(range(21, 35))
_FD_MEMARG_LANE = frozenset(range(84, 92))
_FD_BYTES16 = frozenset({12, 13})  # v128.const, i8x16.shuffle
_FD_LAST = 0xFF  # relaxed SIMD (0x100 and up) is turned off


def _skip_leb(data: bytes, pos: int, end: int) -> int:
    limit = min(end, pos + 10)
    while pos < limit:
        if data[pos] < 0x80:
            return pos + 1
        pos += 1
    raise _Stop


def _skip_memarg(data: bytes, pos: int, end: int) -> int:
    align, pos = _uleb(data, pos, end)
    if align & 0x40:  # multi-memory: a memory index follows
        pos = _skip_leb(data, pos, end)
    return _skip_leb(data, pos, end)


def _walk_body(data: bytes, pos: int, end: int, index: int, multi_value: list[bool]) -> None:
    """Check the instructions of one function body (`pos` just after its locals).

    `multi_value[t]` says whether type `t` has parameters or more than one result, i.e. whether a
    block of that type carries values along its branches.
    """
    kinds = _KINDS
    depth = 0
    opened: list[bool] = []  # per open block: is it a multi-value block?
    multi_depth = 0
    while pos < end:
        op = data[pos]
        pos += 1
        kind = kinds[op]
        if kind == _NONE:
            continue
        if kind == _LEB:
            while data[pos] >= 0x80:  # bounded: IndexError at the end of the module is a _Stop
                pos += 1
            pos += 1
        elif kind == _END:
            if opened:
                depth -= 1
                if opened.pop():
                    multi_depth -= 1
        elif kind == _BLOCK:
            depth += 1
            if depth > MAX_CONTROL_DEPTH:
                raise ShapeError(
                    f"function {index} nests block/loop/if more than {MAX_CONTROL_DEPTH} deep, the limit "
                    f"per function (deep nesting makes compiling superlinear)")
            first = data[pos]
            if first < 0x80 and first & 0x40:  # empty (0x40) or one value type: no block parameters
                pos += 1
                opened.append(False)
                continue
            type_index, pos = _uleb(data, pos, end)
            is_multi = type_index < len(multi_value) and multi_value[type_index]
            opened.append(is_multi)
            if is_multi:
                multi_depth += 1
                if multi_depth > MAX_MULTI_VALUE_BLOCK_DEPTH:
                    raise ShapeError(
                        f"function {index} nests blocks with parameters or several results more than "
                        f"{MAX_MULTI_VALUE_BLOCK_DEPTH} deep, the limit per function (block parameters "
                        f"times branch targets can take the compiler gigabytes)")
        elif kind == _MEMARG:
            pos = _skip_memarg(data, pos, end)
        elif kind == _LEB2:
            pos = _skip_leb(data, _skip_leb(data, pos, end), end)
        elif kind == _BR_TABLE:
            count, pos = _uleb(data, pos, end)
            if count > MAX_BR_TABLE_TARGETS:
                raise ShapeError(
                    f"function {index} has a br_table with {count} targets, over the limit of "
                    f"{MAX_BR_TABLE_TARGETS} per br_table")
            for _ in range(count + 1):
                pos = _skip_leb(data, pos, end)
        elif kind == _BYTES4:
            pos += 4
        elif kind == _BYTES8:
            pos += 8
        elif kind == _SELECT_T:
            count, pos = _uleb(data, pos, end)
            pos += count  # one-byte value types (others belong to turned-off proposals)
        elif kind == _FC:
            sub, pos = _uleb(data, pos, end)
            lebs = _FC_LEBS.get(sub)
            if lebs is None:
                raise _Stop
            for _ in range(lebs):
                pos = _skip_leb(data, pos, end)
        elif kind == _FD:
            sub, pos = _uleb(data, pos, end)
            if sub > _FD_LAST:
                raise _Stop
            if sub in _FD_MEMARG:
                pos = _skip_memarg(data, pos, end)
            elif sub in _FD_LANE:
                pos += 1
            elif sub in _FD_MEMARG_LANE:
                pos = _skip_memarg(data, pos, end) + 1
            elif sub in _FD_BYTES16:
                pos += 16
        else:
            raise _Stop


def _check_types(data: bytes, pos: int, end: int, multi_value: list[bool]) -> None:
    """Check every function type; append to `multi_value` whether each one is multi-value."""
    count, pos = _uleb(data, pos, end)
    for index in range(count):
        if pos >= end or data[pos] != _FUNC_FORM:
            raise _Stop  # a GC type (rec, sub, struct, array): the validator refuses it
        pos += 1
        counts = []
        for what, limit in (("parameters", MAX_TYPE_PARAMS), ("results", MAX_TYPE_RESULTS)):
            n, pos = _uleb(data, pos, end)
            counts.append(n)
            if n > limit:
                raise ShapeError(
                    f"type {index} has {n} {what}, over the limit of {limit} per function or block type "
                    f"(block parameters times branch targets can take the compiler gigabytes)")
            for _ in range(n):
                if pos >= end or data[pos] not in _VALTYPES:
                    raise _Stop
                pos += 1
        multi_value.append(counts[0] > 0 or counts[1] > 1)


def _check_code(data: bytes, pos: int, end: int, first_index: int, multi_value: list[bool]) -> None:
    count, pos = _uleb(data, pos, end)
    if count > MAX_FUNCTIONS:
        raise ShapeError(f"defines {count} function bodies, over the limit of {MAX_FUNCTIONS}")
    for n in range(count):
        index = first_index + n
        size, pos = _uleb(data, pos, end)
        body_end = pos + size
        if size > MAX_FUNCTION_BODY_BYTES:
            raise ShapeError(f"function {index} has a body of {size} bytes, over the limit of "
                             f"{MAX_FUNCTION_BODY_BYTES} bytes per function")
        if body_end > end:
            raise _Stop
        try:
            groups, cursor = _uleb(data, pos, body_end)
            locals_total = 0
            for _ in range(groups):
                declared, cursor = _uleb(data, cursor, body_end)
                locals_total += declared
                if locals_total > MAX_FUNCTION_LOCALS:
                    raise ShapeError(f"function {index} declares more than {MAX_FUNCTION_LOCALS} locals, "
                                     f"the limit per function")
                cursor = _skip_leb(data, cursor, body_end)  # the value type
            _walk_body(data, cursor, body_end, index, multi_value)
        except (_Stop, IndexError):
            pass  # this body is not what we understand: the validator will say why
        pos = body_end


def _imported_functions(data: bytes, pos: int, end: int) -> int:
    """How many functions the import section imports (they come first in the index space)."""
    count, pos = _uleb(data, pos, end)
    functions = 0
    for _ in range(count):
        for _name in range(2):
            length, pos = _uleb(data, pos, end)
            pos += length
        if pos >= end:
            raise _Stop
        kind = data[pos]
        pos += 1
        if kind == 0x00:  # function: type index
            functions += 1
            pos = _skip_leb(data, pos, end)
        elif kind == 0x01:  # table: reftype, limits
            pos = _skip_limits(data, pos + 1, end)
        elif kind == 0x02:  # memory: limits
            pos = _skip_limits(data, pos, end)
        elif kind == 0x03:  # global: valtype, mutability
            pos += 2
        else:
            raise _Stop
    return functions


def _skip_limits(data: bytes, pos: int, end: int) -> int:
    if pos >= end:
        raise _Stop
    flags = data[pos]
    pos = _skip_leb(data, pos + 1, end)
    if flags & 0x01:
        pos = _skip_leb(data, pos, end)
    return pos


def check_shape(wasm: bytes) -> None:
    """Raise `ShapeError` when `wasm` breaks one of the rules above; anything else passes here."""
    data = bytes(wasm)
    end = len(data)
    pos = 8  # magic and version
    imported = 0
    multi_value: list[bool] = []
    while pos < end:
        section = data[pos]
        try:
            size, start = _uleb(data, pos + 1, end)
        except _Stop:
            return
        section_end = start + size
        if section_end > end:
            return
        try:
            if section == _TYPE_SECTION:
                _check_types(data, start, section_end, multi_value)
            elif section == 2:
                imported = _imported_functions(data, start, section_end)
            elif section == _FUNCTION_SECTION:
                count, _ = _uleb(data, start, section_end)
                if count > MAX_FUNCTIONS:
                    raise ShapeError(f"defines {count} functions, over the limit of {MAX_FUNCTIONS}")
            elif section == _CODE_SECTION:
                _check_code(data, start, section_end, imported, multi_value)
        except (_Stop, IndexError):
            pass  # not understood: the validator decides
        pos = section_end
