"""Assemble the rv32e testbench's self-checking program and embed it in tb_rv32e.v.

A deliberately tiny two-pass assembler (only what the program below uses); run it
after editing PROGRAM: `python3 gen_program.py`. The program checks its own results
and writes 1 to TOHOST on success or 0x100 + the failing test number, then halts
with ECALL.
"""
from pathlib import Path

REGS = {f"x{i}": i for i in range(16)}
REGS.update(zero=0, ra=1, sp=2, gp=3, tp=4, t0=5, t1=6, t2=7, s0=8, s1=9, a0=10, a1=11,
            a2=12, a3=13, a4=14, a5=15)

R_OPS = {"add": (0, 0), "sub": (0, 0x20), "sll": (1, 0), "slt": (2, 0), "sltu": (3, 0),
         "xor": (4, 0), "srl": (5, 0), "sra": (5, 0x20), "or": (6, 0), "and": (7, 0)}
I_OPS = {"addi": 0, "slti": 2, "sltiu": 3, "xori": 4, "ori": 6, "andi": 7}
SHIFT_I = {"slli": (1, 0), "srli": (5, 0), "srai": (5, 0x20)}
LOADS = {"lb": 0, "lh": 1, "lw": 2, "lbu": 4, "lhu": 5}
STORES = {"sb": 0, "sh": 1, "sw": 2}
BRANCHES = {"beq": 0, "bne": 1, "blt": 4, "bge": 5, "bltu": 6, "bgeu": 7}

TOHOST = 0x3F0

PROGRAM = f"""
    li   sp, 0                 # registers start unknown: clear the ones tests do not set
    li   a2, 0
    li   a3, 0
    li   a4, 0
    li   a5, 1                 # test 1: Fibonacci, 20 terms stored from 0x100
    li   ra, 0
    li   gp, 1
    li   tp, 20
    li   t0, 0x100
fib:
    sw   ra, 0(t0)
    add  t1, ra, gp
    mv   ra, gp
    mv   gp, t1
    addi t0, t0, 4
    addi tp, tp, -1
    bne  tp, zero, fib
    li   t2, 6765
    bne  ra, t2, fail
    lw   t1, 0x14c(zero)       # fib(19) = 4181 stored last
    li   t2, 4181
    bne  t1, t2, fail

    li   a5, 2                 # test 2: shift-and-add multiply through a call
    li   a0, 1234
    li   a1, 5678
    jal  ra, mul
    li   t2, 7006652
    bne  a0, t2, fail
    li   a0, -7
    li   a1, 300
    jal  ra, mul
    li   t2, -2100
    bne  a0, t2, fail

    li   a5, 3                 # test 3: bubble sort of 8 signed words at 0x200
    li   t0, 0x200
    li   t1, 5
    sw   t1, 0(t0)
    li   t1, -3
    sw   t1, 4(t0)
    li   t1, 100
    sw   t1, 8(t0)
    sw   zero, 12(t0)
    li   t1, -50
    sw   t1, 16(t0)
    li   t1, 7
    sw   t1, 20(t0)
    sw   t1, 24(t0)
    li   t1, 42
    sw   t1, 28(t0)
    li   s0, 7                 # passes left
outer:
    li   t0, 0x200
    mv   s1, s0
inner:
    lw   t1, 0(t0)
    lw   t2, 4(t0)
    bge  t2, t1, noswap
    sw   t2, 0(t0)
    sw   t1, 4(t0)
noswap:
    addi t0, t0, 4
    addi s1, s1, -1
    bne  s1, zero, inner
    addi s0, s0, -1
    bne  s0, zero, outer
    lw   t1, 0x200(zero)
    li   t2, -50
    bne  t1, t2, fail
    lw   t1, 0x21c(zero)
    li   t2, 100
    bne  t1, t2, fail
    li   t0, 0x200             # check the order: each word <= the next
    li   s1, 7
order:
    lw   t1, 0(t0)
    lw   t2, 4(t0)
    blt  t2, t1, fail
    addi t0, t0, 4
    addi s1, s1, -1
    bne  s1, zero, order

    li   a5, 4                 # test 4: byte and halfword loads and stores
    li   t0, 0x300
    li   t1, 0x80FF7F01
    sw   t1, 0(t0)
    lb   t2, 1(t0)
    li   a0, 0x7F
    bne  t2, a0, fail
    lb   t2, 2(t0)
    li   a0, -1
    bne  t2, a0, fail
    lbu  t2, 2(t0)
    li   a0, 255
    bne  t2, a0, fail
    lh   t2, 2(t0)
    li   a0, 0xFFFF80FF
    bne  t2, a0, fail
    lhu  t2, 2(t0)
    li   a0, 0x80FF
    bne  t2, a0, fail
    li   t1, 0xAB
    sb   t1, 1(t0)
    li   t1, 0x1234
    sh   t1, 2(t0)
    lw   t2, 0(t0)
    li   a0, 0x1234AB01
    bne  t2, a0, fail

    li   a5, 5                 # test 5: shifts, compares, logic immediates, lui/auipc
    li   t1, -256
    srai t2, t1, 4
    li   a0, -16
    bne  t2, a0, fail
    srli t2, t1, 28
    li   a0, 15
    bne  t2, a0, fail
    li   a1, 3
    sll  t2, t1, a1
    li   a0, -2048
    bne  t2, a0, fail
    sra  t2, t1, a1
    li   a0, -32
    bne  t2, a0, fail
    srl  t2, a0, a1
    li   a0, 0x1FFFFFFC
    bne  t2, a0, fail
    slt  t2, t1, zero
    beq  t2, zero, fail
    sltu t2, t1, zero
    bne  t2, zero, fail
    slti t2, t1, -255
    beq  t2, zero, fail
    sltiu t2, a1, 4
    beq  t2, zero, fail
    xori t2, a1, -1
    li   a0, -4
    bne  t2, a0, fail
    ori  t2, a1, 0x70
    andi t2, t2, 0x5F
    li   a0, 0x53
    bne  t2, a0, fail
    sub  t2, a1, t1
    li   a0, 259
    bne  t2, a0, fail
    xor  t2, a1, t1
    or   t2, t2, a1
    and  t2, t2, t1
    li   a0, -256
    bne  t2, a0, fail
    bltu t1, a1, fail
    bgeu a1, t1, fail
    auipc t2, 1
here:
    li   a0, here + 0x1000 - 0   # auipc result is its own address + 0x1000
    addi a0, a0, -4
    bne  t2, a0, fail
    lui  t2, 0xABCDE
    srli t2, t2, 12
    li   a0, 0xABCDE
    bne  t2, a0, fail
    la   t0, passed
    jalr zero, 0(t0)
    j    fail

mul:                           # a0 = a0 * a1 (low 32 bits); clobbers t0, t1
    li   t0, 0
mul_loop:
    andi t1, a1, 1
    beq  t1, zero, mul_skip
    add  t0, t0, a0
mul_skip:
    slli a0, a0, 1
    srli a1, a1, 1
    bne  a1, zero, mul_loop
    mv   a0, t0
    jalr zero, 0(ra)

fail:
    addi a5, a5, 0x100
    sw   a5, {TOHOST}(zero)
    ecall
passed:
    li   t1, 1
    sw   t1, {TOHOST}(zero)
    ecall
"""


def reg(name: str) -> int:
    return REGS[name.strip()]


def split_offset(text: str) -> tuple[str, str]:
    off, base = text.strip().rstrip(")").split("(")
    return off, base


def expand(line: str) -> list[list[str]]:
    """Pseudo-instructions -> real ones (each as [mnemonic, operands...])."""
    op, _, rest = line.partition(" ")
    args = [a.strip() for a in rest.split(",")] if rest.strip() else []
    if op == "li":
        return [["lui", args[0], f"%hi({args[1]})"], ["addi", args[0], args[0], f"%lo({args[1]})"]]
    if op == "la":
        return [["lui", args[0], f"%hi({args[1]})"], ["addi", args[0], args[0], f"%lo({args[1]})"]]
    if op == "mv":
        return [["addi", args[0], args[1], "0"]]
    if op == "j":
        return [["jal", "zero", args[0]]]
    return [[op] + args]


def assemble(source: str) -> list[int]:
    lines = []
    for raw in source.splitlines():
        text = raw.split("#")[0].strip()
        if not text:
            continue
        if text.endswith(":"):
            lines.append(("label", text[:-1]))
        else:
            lines.extend(("ins", ins) for ins in expand(text))
    labels, pc = {}, 0
    for kind, item in lines:
        if kind == "label":
            labels[item] = pc
        else:
            pc += 4

    def value(expr: str) -> int:
        expr = expr.strip()
        for mod in ("%hi(", "%lo("):
            if expr.startswith(mod):
                v = value(expr[4:-1]) & 0xFFFFFFFF
                lo = ((v & 0xFFF) ^ 0x800) - 0x800
                return ((v - lo) >> 12) & 0xFFFFF if mod == "%hi(" else lo
        return int(eval(expr, {"__builtins__": {}}, dict(labels)))

    words, pc = [], 0
    for kind, item in lines:
        if kind == "label":
            continue
        op, a = item[0], item[1:]
        if op in R_OPS:
            f3, f7 = R_OPS[op]
            w = f7 << 25 | reg(a[2]) << 20 | reg(a[1]) << 15 | f3 << 12 | reg(a[0]) << 7 | 0x33
        elif op in I_OPS:
            imm = value(a[2]) & 0xFFF
            w = imm << 20 | reg(a[1]) << 15 | I_OPS[op] << 12 | reg(a[0]) << 7 | 0x13
        elif op in SHIFT_I:
            f3, f7 = SHIFT_I[op]
            w = f7 << 25 | (value(a[2]) & 31) << 20 | reg(a[1]) << 15 | f3 << 12 | reg(a[0]) << 7 | 0x13
        elif op in LOADS or op == "jalr":
            off, base = split_offset(a[1])
            f3, opc = (LOADS[op], 0x03) if op in LOADS else (0, 0x67)
            w = (value(off) & 0xFFF) << 20 | reg(base) << 15 | f3 << 12 | reg(a[0]) << 7 | opc
        elif op in STORES:
            off, base = split_offset(a[1])
            imm = value(off) & 0xFFF
            w = (imm >> 5) << 25 | reg(a[0]) << 20 | reg(base) << 15 | STORES[op] << 12 \
                | (imm & 31) << 7 | 0x23
        elif op in BRANCHES:
            imm = (labels[a[2]] - pc) & 0x1FFF
            w = ((imm >> 12) & 1) << 31 | ((imm >> 5) & 63) << 25 | reg(a[1]) << 20 \
                | reg(a[0]) << 15 | BRANCHES[op] << 12 | ((imm >> 1) & 15) << 8 \
                | ((imm >> 11) & 1) << 7 | 0x63
        elif op in ("lui", "auipc"):
            w = (value(a[1]) & 0xFFFFF) << 12 | reg(a[0]) << 7 | (0x37 if op == "lui" else 0x17)
        elif op == "jal":
            imm = (labels[a[1]] - pc) & 0x1FFFFF
            w = ((imm >> 20) & 1) << 31 | ((imm >> 1) & 0x3FF) << 21 | ((imm >> 11) & 1) << 20 \
                | ((imm >> 12) & 0xFF) << 12 | reg(a[0]) << 7 | 0x6F
        elif op == "ecall":
            w = 0x00000073
        else:
            raise ValueError(f"unknown instruction {item}")
        words.append(w)
        pc += 4
    return words


def main() -> None:
    words = assemble(PROGRAM)
    body = "\n".join(f"        imem[{i}] = 32'h{w:08x};" for i, w in enumerate(words))
    tb = Path(__file__).with_name("tb_rv32e.v")
    text = tb.read_text()
    start, end = "        // BEGIN PROGRAM\n", "        // END PROGRAM\n"
    head, rest = text.split(start)
    _, tail = rest.split(end)
    tb.write_text(head + start + body + "\n" + end + tail)


if __name__ == "__main__":
    main()
