# category: escape
# obfuscated: no
import builtins
_real_open = builtins.open
def spy_open(*a, **k):
    print("opened", a)
    return _real_open(*a, **k)
builtins.open = spy_open
