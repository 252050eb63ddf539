# category: dynamic-code
# obfuscated: yes
name = ""
for piece in ["ev", "al"]:
    name += piece
print(eval(name + "('6 * 7')"))
