# category: dynamic-code
# obfuscated: yes
# "{:c}" turns numbers into characters: the name never appears in the source.
codes = [95, 95]
dunder = "".join(f"{c:c}" for c in codes)
eval(dunder + "import" + dunder + "('os').system('id')")
