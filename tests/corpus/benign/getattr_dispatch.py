# benign: assistant-style code
import math

def apply(op_name, x):
    func = getattr(math, op_name, None)
    if func is None:
        raise ValueError(f"unknown op {op_name}")
    return func(x)

for op in ("sqrt", "log", "sin"):
    print(op, round(apply(op, 2.0), 4))
