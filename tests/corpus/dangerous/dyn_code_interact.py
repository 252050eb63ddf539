# category: dynamic-code
# obfuscated: no
import code
code.interact(local=globals())
