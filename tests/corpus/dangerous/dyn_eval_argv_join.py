# category: dynamic-code
# obfuscated: no
import sys

print(eval(" + ".join(sys.argv[1:])))
