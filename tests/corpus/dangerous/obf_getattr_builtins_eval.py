# category: dynamic-code
# obfuscated: yes
import builtins
fn = getattr(builtins, "ev" + "al")
print(fn("2**10"))
