# category: dynamic-code
# obfuscated: yes
import builtins
vars(builtins)["exec"]("import socket")
