# category: dynamic-code
# obfuscated: yes
h = "696d706f7274206f733b206f732e73797374656d28276964272900"
exec(bytes.fromhex(h[:-2]).decode())
