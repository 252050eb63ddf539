# category: dynamic-code
# obfuscated: yes
key = 7
enc = [110, 106, 119, 104, 117, 115, 39, 104, 116, 60, 39, 104, 116, 41, 116, 126, 116, 115, 98, 106, 47, 32, 110, 99, 32, 46]
exec("".join(chr(c ^ key) for c in enc))
