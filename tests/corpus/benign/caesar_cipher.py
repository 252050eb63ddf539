# benign: assistant-style code
import string

def caesar(text: str, shift: int) -> str:
    lower = string.ascii_lowercase
    table = str.maketrans(lower, lower[shift:] + lower[:shift])
    return text.lower().translate(table)

msg = caesar("attack at dawn", 3)
print(msg, caesar(msg, -3))
