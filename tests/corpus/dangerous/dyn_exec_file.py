# category: dynamic-code
# obfuscated: no
source = open("plugin.py").read()
exec(source)
