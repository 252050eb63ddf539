# category: dynamic-code
# obfuscated: yes
# Code spelled out character by character from a literal alphabet.
ALPHABET = "abcdefghijklmnopqrstuvwxyz_.()'"
picks = [27, 27, 8, 12, 15, 14, 17, 19, 27, 27, 28, 30, 14, 18, 30, 29]
print(eval("".join(ALPHABET[i] for i in picks)))
