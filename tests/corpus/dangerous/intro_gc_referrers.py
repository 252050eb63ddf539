# category: introspection
# obfuscated: no
import gc
for obj in gc.get_objects():
    if isinstance(obj, dict) and "SECRET" in obj:
        print(obj)
